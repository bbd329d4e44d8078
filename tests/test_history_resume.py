"""The logged history survives kills and resumes (bertlab.callbacks.loggers, W&B run id):
a run killed twice and resumed twice with ``ckpt_path=last`` ends with the same
``csv/metrics.csv`` rows (steps and values), the same TensorBoard scalars and one W&B run
id, as the run never interrupted. Plus unit tests of the CSV writer (kept file, cut back,
partial row, new columns)."""

from __future__ import annotations

import csv
import glob
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.test_resume import ENV, ROOT, TINY_RUN

from bertlab.callbacks.loggers import ResumableCSVLogger, read_history

# this checkout's sources first (an installed bertlab may be another checkout's)
ENV = {**ENV, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}

# 48 steps an epoch, validations every 24 steps (logged at steps 23, 47, 71, 95), resume
# checkpoints every 30 steps. Kill 1 after step 65: resumed from the step-60 checkpoint (taken at
# a training batch end: the row of step 59 is logged after it was written). Kill 2 after step 80:
# resumed from the validation of step 72 (ModelCheckpoint's last.ckpt at the validation end).
HISTORY_RUN = [
    *(a for a in TINY_RUN if not a.startswith(("logger=", "trainer.max_epochs", "trainer.val_check_interval"))),
    "logger=many",
    "trainer.max_epochs=2",
    "trainer.val_check_interval=0.5",
    "trainer.log_every_n_steps=5",
    "callbacks.resume_checkpoint.every_n_train_steps=30",
    "callbacks.crf_mechanism=null",
]
KILLS = (65, 80)
# wall-clock measurements: present in the same rows, values differ between runs
TIMED = ("time/", "train/tokens_per_s")


def _run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        *HISTORY_RUN,
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={run_dir.parent}",
    ]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)


def _csv(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "csv" / "metrics.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _untimed(row: dict[str, str]) -> dict[str, str]:
    return {k: (v if not k.startswith(TIMED) else bool(v)) for k, v in row.items()}


def _tb_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if not tag.startswith(TIMED)
    }


@pytest.mark.slow
def test_history_of_a_twice_killed_run_equals_the_uninterrupted_run(tmp_path):
    from bertlab.utils.wandb_utils import read_offline_run

    ref_dir, run_dir = tmp_path / "uninterrupted", tmp_path / "interrupted"
    # the reference runs beside the interrupted one (two processes, one thread each)
    ref_result: dict = {}
    t = threading.Thread(target=lambda: ref_result.update(proc=_run(ref_dir)))
    t.start()
    for i, step in enumerate(KILLS):
        killed = _run(
            run_dir,
            *(["ckpt_path=last", "resume.also_may_change=[callbacks.kill]"] if i else []),
            "+callbacks.kill._target_=tests.test_resume.KillAtStep",
            f"+callbacks.kill.step={step}",
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = _run(run_dir, "ckpt_path=last", "resume.also_may_change=[callbacks.kill]")
    t.join()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ref_result["proc"].returncode == 0, ref_result["proc"].stderr[-3000:]

    # CSV: every row of the uninterrupted run, in order, no duplicate, the same values
    (h_got, got), (h_want, want) = _csv(run_dir), _csv(ref_dir)
    assert h_got == h_want
    val_steps = [r["step"] for r in want if r.get("val/f1")]
    assert val_steps == ["23", "47", "71", "95"]
    assert [r["step"] for r in got if r.get("val/f1")] == val_steps
    assert [_untimed(r) for r in got] == [_untimed(r) for r in want]
    assert any(r["step"] == "59" and r.get("train/loss") for r in got)  # logged after the step-60 checkpoint

    # TensorBoard: the same folder (no version_1), the re-logged steps purged
    assert not glob.glob(str(run_dir / "tensorboard" / "version_*"))
    tb_got, tb_want = _tb_scalars(run_dir), _tb_scalars(ref_dir)
    assert "val/f1" in tb_want and tb_got == tb_want

    # W&B: one run id over the three processes, kept in the run folder
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    offline = sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*")))
    assert len(offline) == 3 and all(d.endswith("-" + run_id) for d in offline), offline
    assert {read_offline_run(d)["id"] for d in offline} == {run_id}
    assert run_id != (ref_dir / "wandb_run_id").read_text().strip()


# ------------------------------------------------------------------------------ unit tests
def _logger(tmp_path) -> ResumableCSVLogger:
    return ResumableCSVLogger(save_dir=str(tmp_path), name="csv", version="")


def _read(tmp_path) -> list[dict[str, str]]:
    return read_history(str(tmp_path / "csv" / "metrics.csv"))[1]


def test_the_csv_history_is_kept_and_cut_back_to_the_resumed_step(tmp_path):
    first = _logger(tmp_path)
    for step in range(6):
        first.log_metrics({"train/loss": float(step)}, step=step)
    # every row is on disk as soon as it is logged (a SIGKILL loses none): no save() here
    assert [r["step"] for r in _read(tmp_path)] == [str(s) for s in range(6)]
    first.log_metrics({"val/f1": 0.5}, step=5)  # a new column: the file rewritten with it
    header, rows, _ = read_history(str(tmp_path / "csv" / "metrics.csv"))
    assert header == ["step", "train/loss", "val/f1"] and rows[-1] == {"step": "5", "train/loss": "", "val/f1": "0.5"}

    resumed = _logger(tmp_path)  # a new process: Lightning's logger deleted the file here
    resumed.log_hyperparams({"lr": 1e-3})
    assert len(_read(tmp_path)) == 7
    resumed.resume_history(4)  # the checkpoint of global step 4: rows of steps >= 4 are logged again
    header, rows, _ = read_history(str(tmp_path / "csv" / "metrics.csv"))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3"] and header == ["step", "train/loss"]
    resumed.log_metrics({"train/loss": 4.0}, step=4)
    resumed.save()
    assert [(r["step"], r["train/loss"]) for r in _read(tmp_path)][-2:] == [("3", "3.0"), ("4", "4.0")]

    fresh = _logger(tmp_path)  # a fresh fit in a folder with a history: starts it afresh
    fresh.resume_history(0)
    assert _read(tmp_path) == []


def test_a_partial_last_row_of_a_killed_writer_is_dropped(tmp_path):
    path = tmp_path / "csv" / "metrics.csv"
    path.parent.mkdir()
    path.write_text("step,train/loss\n0,1.5\n1,1.25\n2,1.", encoding="utf-8")
    logger = _logger(tmp_path)
    logger.log_metrics({"train/loss": 2.0}, step=2)
    assert path.read_text(encoding="utf-8") == "step,train/loss\n0,1.5\n1,1.25\n2,2.0\n"
