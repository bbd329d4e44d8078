"""SIGTERM / SIGINT during training (issue 27 item 5): a resumable checkpoint at the next step
boundary, status ``interrupted``, a non-zero exit (128 + signal), and ``ckpt_path=last``
continues exactly where the uninterrupted run would have been. (Before: SIGTERM trained on to
the end of the epoch and the run ended ``failed: SIGTERMException`` with exit status 0.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from tests.conftest import TINY_ENCODER, compose_cfg
from tests.test_resume_families import _steps

from bertlab.callbacks.interrupt import RunInterrupted
from bertlab.train import train
from bertlab.utils.run_status import read_status

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "experiment=cws_crf",
    "debug=default",
    *TINY_ENCODER,
    "data.max_train_chars=4000",
    "data.max_eval_sentences=8",
    "data.batch_size=4",
    "trainer.limit_train_batches=8",
    "trainer.max_epochs=2",
    "threads=1",
    "callbacks.rich_progress_bar=null",
    "callbacks.resume_checkpoint.every_n_train_steps=null",  # the only mid-epoch checkpoint is the signal's
    "+callbacks.steps._target_=tests.test_resume_families.StepLosses",
]


class SignalAtStep(pl.Callback):
    """Sends ``sig`` to this process once optimizer step ``step`` is done."""

    def __init__(self, step: int, sig: str):
        self.step, self.sig = step, getattr(signal, sig)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.sig)


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint_and_the_resume_equals_the_uninterrupted_run(tmp_path):
    ref_metrics, _ = train(compose_cfg(tmp_path / "ref", [*TINY, f"+callbacks.steps.path={tmp_path}/ref.steps"]))
    run = tmp_path / "run"
    signal_at = ["+callbacks.sig._target_=tests.test_interrupt.SignalAtStep", "+callbacks.sig.step=3"]
    with pytest.raises(RunInterrupted) as err:
        train(
            compose_cfg(run, [*TINY, *signal_at, "+callbacks.sig.sig=SIGTERM", f"+callbacks.steps.path={tmp_path}/a"])
        )
    assert err.value.exit_code == 143 and err.value.step in (3, 4)
    status = read_status(run)
    assert status["status"] == "interrupted" and status["checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    # stopped at once (the step-loss logger may run after the interrupt's save on the last step)
    assert [s for s, _ in _steps(tmp_path / "a")][:3] == [1, 2, 3] and len(_steps(tmp_path / "a")) <= err.value.step
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None) or callable(signal.getsignal(signal.SIGTERM))

    resume = ["ckpt_path=last", "resume.also_may_change=[callbacks.sig,callbacks.steps]"]
    metrics, _ = train(compose_cfg(run, [*TINY, *resume, f"+callbacks.steps.path={tmp_path}/b"]))
    ref = _steps(tmp_path / "ref.steps")
    assert _steps(tmp_path / "a") == ref[: len(_steps(tmp_path / "a"))]
    assert _steps(tmp_path / "b") == ref[err.value.step :]  # the resume: the same steps with the same losses
    assert metrics["test"] == ref_metrics["test"]
    assert read_status(run)["status"] == "done"


@pytest.mark.slow
def test_ctrl_c_through_the_cli_exits_130_with_one_line_and_status_interrupted(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertlab.train",
            *TINY,
            f"+callbacks.steps.path={tmp_path}/steps",
            "+callbacks.sig._target_=tests.test_interrupt.SignalAtStep",
            "+callbacks.sig.step=2",
            "+callbacks.sig.sig=SIGINT",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 130, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("bertlab: interrupted by SIGINT")]
    assert len(lines) == 1 and "ckpt_path=last" in lines[0] and "Traceback" not in res.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "interrupted" and (run / "checkpoints" / "last.ckpt").is_file()
    assert not (run / "metrics.json").exists()
