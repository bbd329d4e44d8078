"""Kill -9 a training run mid-epoch, resume it, and get bit-for-bit the run that was never
interrupted: parameters, optimizer and scheduler states, every callback tensor (EMA), the
metrics. Real subprocesses of the CLI; the kill is a SIGKILL the run sends itself at an
exact step (KillAtStep), so the test is deterministic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
}

CKPT_EVERY = 50
# 48 steps an epoch; saves at steps 48 (val), 50, 96 (val), 100, 144; killed at 125: 25 steps after
# the last save, in the middle of the third epoch
KILL_AT = 125
TINY_RUN = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_chars=12000",
    "data.max_eval_sentences=30",
    "data.batch_size=4",
    "trainer.max_epochs=3",
    "trainer.val_check_interval=1.0",
    "threads=1",
    "scheduler=warmup_linear",
    "scheduler.warmup_steps=20",  # a schedule whose position matters
    "callbacks.rich_progress_bar=null",
    "callbacks.transition_heatmap=null",
    "logger=csv",
    f"callbacks.resume_checkpoint.every_n_train_steps={CKPT_EVERY}",
    # EMA weights (their own state in the checkpoint) must come back exactly too
    "+callbacks.ema._target_=bertlab.callbacks.ema.EMA",
    "+callbacks.ema.decay=0.9",
]


class KillAtStep(pl.Callback):
    """SIGKILL this process right after optimizer step ``step`` (no cleanup, like the OOM killer)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class DumpFinalState(pl.Callback):
    """At the end of fitting: parameters, optimizer and scheduler states and every tensor a
    callback keeps in its state_dict (EMA weights), to compare two runs."""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer, pl_module):
        state: dict[str, Any] = {
            "model": pl_module.state_dict(),
            "global_step": trainer.global_step,
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        }
        for cb in trainer.callbacks:
            sd = cb.state_dict()
            tensors = {k: v for k, v in _flatten(sd).items() if isinstance(v, torch.Tensor)}
            if tensors:
                state[f"callback:{type(cb).__name__}"] = tensors
        torch.save(state, self.path)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): obj}


def _run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        *TINY_RUN,
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={run_dir.parent}",
        "+callbacks.dump._target_=tests.test_resume.DumpFinalState",
        f"+callbacks.dump.path={run_dir}/final_state.pt",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=170)


def _max_abs_diff(a: Any, b: Any, where: str = "") -> float:
    fa, fb = _flatten(a), _flatten(b)
    assert fa.keys() == fb.keys(), f"{where}: different keys {set(fa) ^ set(fb)}"
    worst = 0.0
    for k in fa:
        x, y = fa[k], fb[k]
        if isinstance(x, torch.Tensor):
            assert x.shape == y.shape, f"{where}{k}"
            if x.numel():
                worst = max(worst, (x.double() - y.double()).abs().max().item())
        elif isinstance(x, float):
            worst = max(worst, abs(x - y))
        else:
            assert x == y, f"{where}{k}: {x!r} != {y!r}"
    return worst


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path):
    from bertlab.runs import find_last_checkpoint
    from bertlab.utils.run_status import read_status

    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "interrupted"
    ref = _run(ref_dir)
    assert ref.returncode == 0, ref.stderr[-3000:]

    killed = _run(run_dir, "+callbacks.kill._target_=tests.test_resume.KillAtStep", f"+callbacks.kill.step={KILL_AT}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / "metrics.json").exists()  # a killed run never looks finished
    assert read_status(run_dir)["status"] == "killed"
    last = find_last_checkpoint(str(run_dir))
    # a real resume checkpoint (EMA, sampler position, RNG states, NaN guard) loads without unpickling objects
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == KILL_AT - KILL_AT % CKPT_EVERY <= KILL_AT - 20
    # saved on the train batch end of step 100: 4 batches into the third epoch (steps 97-144)
    progress = ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    position = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["sampler"]
    assert (
        position == {"epoch": 2, "yielded": progress["processed"], "seed": 42, "world_size": 1}
        and progress["processed"] == 4
    )

    resumed = _run(run_dir, "ckpt_path=last", "resume.also_may_change=[callbacks.kill]")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, want = (
        torch.load(run_dir / "final_state.pt", weights_only=False),
        torch.load(ref_dir / "final_state.pt", weights_only=False),
    )
    assert got["global_step"] == want["global_step"] > KILL_AT
    diffs = {k: _max_abs_diff(got[k], want[k], k) for k in want if k != "global_step"}
    print("max abs diff per state:", diffs)
    assert set(got) == set(want) and "callback:EMA" in want
    assert max(diffs.values()) <= 1e-6, diffs

    m_got, m_want = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, ref_dir))
    assert m_got["resumed_from"].endswith("last.ckpt")
    for key in ("test", "val_last"):
        assert _max_abs_diff(m_got[key], m_want[key], key) <= 1e-6
    assert read_status(run_dir)["status"] == "done"


class TraceSteps(pl.Callback):
    """Diagnostics: one line per training batch (global step, batch indices, loss, a torch
    random draw), appended to ``path``; diff two runs' traces to see where they part."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with open(self.path, "a", encoding="utf-8") as fh:
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            fh.write(
                f"{trainer.global_step} ep{trainer.current_epoch} b{batch_idx} idx={batch['index'].tolist()} "
                f"loss={loss:.8f} lr={lr:.8g}\n"
            )


# --------------------------------------------------------------------------- atomic checkpoints
_DIE_MID_SAVE = r"""
import io, os, signal, sys, torch
import bertlab.utils.checkpoint_io as cio
path = sys.argv[1]
saver = cio.AtomicCheckpointIO()
saver.save_checkpoint({"state_dict": {"w": torch.zeros(1000)}, "global_step": 1}, path)
orig = cio.atomic_write
def dying(target, write, fsync=True):
    def half(fh):
        buf = io.BytesIO(); write(buf); data = buf.getvalue()
        fh.write(data[: len(data) // 2]); fh.flush(); os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of writing the checkpoint
    return orig(target, half, fsync)
cio.atomic_write = dying
saver.save_checkpoint({"state_dict": {"w": torch.ones(100000)}, "global_step": 2}, path)
"""


def test_a_kill_during_a_checkpoint_save_leaves_the_previous_checkpoint(tmp_path):
    from bertlab.runs import find_last_checkpoint, is_complete_checkpoint, resolve_resume_path
    from bertlab.utils.atomic import is_temp_file

    last = tmp_path / "checkpoints" / "last.ckpt"
    res = subprocess.run(
        [sys.executable, "-c", _DIE_MID_SAVE, str(last)], env=ENV, cwd=ROOT, capture_output=True, timeout=120
    )
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    leftovers = [p for p in last.parent.iterdir() if p != last]
    assert len(leftovers) == 1 and is_temp_file(leftovers[0]) and leftovers[0].stat().st_size > 0
    assert not is_complete_checkpoint(str(leftovers[0]))  # the half-written bytes
    ckpt = torch.load(last, weights_only=True)  # the previous checkpoint, whole
    assert ckpt["global_step"] == 1 and torch.equal(ckpt["state_dict"]["w"], torch.zeros(1000))
    assert find_last_checkpoint(str(tmp_path)) == str(last) == resolve_resume_path("last", str(tmp_path))


def test_a_failed_save_removes_its_temporary_file_and_a_truncated_file_is_refused(tmp_path, monkeypatch):
    import bertlab.utils.checkpoint_io as cio
    from bertlab.runs import find_last_checkpoint, resolve_resume_path
    from bertlab.utils.errors import CheckpointError

    path = tmp_path / "last.ckpt"
    saver = cio.AtomicCheckpointIO()
    saver.save_checkpoint({"global_step": 1}, str(path))

    def disk_full(fh):
        fh.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    orig = cio.atomic_write
    monkeypatch.setattr(cio, "atomic_write", lambda target, write, fsync=True: orig(target, disk_full, fsync))
    with pytest.raises(OSError, match="No space"):
        saver.save_checkpoint({"global_step": 2}, str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(path, weights_only=True)["global_step"] == 1
    # a checkpoint truncated by a non-atomic writer (e.g. a copy) is never picked or accepted
    blob = path.read_bytes()
    (tmp_path / "newer.ckpt").write_bytes(blob[: len(blob) // 2])
    assert find_last_checkpoint(str(tmp_path)) == str(path)
    path.unlink()
    assert find_last_checkpoint(str(tmp_path)) is None and resolve_resume_path("last", str(tmp_path)) is None
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        resolve_resume_path(str(tmp_path / "newer.ckpt"), str(tmp_path))
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        resolve_resume_path(str(tmp_path), str(tmp_path))
