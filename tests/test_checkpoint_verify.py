"""Checkpoints are verified before use (bertlab.runs.verify_checkpoint, issue 27 §2): every zip
entry's CRC-32 and every weight / optimizer-state tensor finite. A bad file given by name is
one line, exit status 2 (evaluate, predict, generate, export); on resume (``ckpt_path=last``)
a bad newer checkpoint is skipped with a WARNING naming it and why, and the previous good one
is used. Real checkpoints of a tiny run (tests/conftest.py: tiny_cws_run)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bertlab.runs import (
    check_resume_checkpoint,
    find_last_checkpoint,
    load_run,
    read_checkpoint,
    resolve_resume_path,
    verify_checkpoint,
)
from bertlab.utils.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
SEQ_LABELING = "bertlab.tasks.sequence_labeling.SequenceLabelingModule"


def flip_middle(src: Path, dst: Path, n: int = 4096) -> Path:
    """A copy of ``src`` with ``n`` bytes in the middle inverted (bit rot, a bad disk block):
    still a zip archive with its end record, so only the CRC check can tell."""
    blob = bytearray(src.read_bytes())
    mid = len(blob) // 2
    blob[mid : mid + n] = bytes(b ^ 0xFF for b in blob[mid : mid + n])
    dst.write_bytes(bytes(blob))
    return dst


def with_nan_adam_state(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose first Adam second moment holds a NaN, written by torch.save (a
    valid zip: every CRC right)."""
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    state = ckpt["optimizer_states"][0]["state"]
    first = state[sorted(state)[0]]
    first["exp_avg_sq"].view(-1)[0] = float("nan")
    torch.save(ckpt, dst)
    return dst


@pytest.fixture
def run_copy(tiny_cws_run, tmp_path) -> Path:
    """A private copy of the tiny run: checkpoints/{best-step*.ckpt (older), last.ckpt (newer)}."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_cws_run / "checkpoints", dst / "checkpoints")
    best = next((dst / "checkpoints").glob("best*.ckpt"))
    old = time.time() - 100
    os.utime(best, (old, old))
    return dst


def test_sound_checkpoints_pass(run_copy):
    for path in (run_copy / "checkpoints").iterdir():
        assert verify_checkpoint(str(path)) is None
    assert resolve_resume_path("last", str(run_copy)) == str(run_copy / "checkpoints" / "last.ckpt")


def test_flipped_bytes_are_refused_by_every_loader(run_copy):
    bad = flip_middle(run_copy / "checkpoints" / "last.ckpt", run_copy / "flipped.ckpt")
    reason = verify_checkpoint(str(bad))
    assert reason is not None and str(bad) in reason and "corrupt bytes" in reason, reason
    for load in (
        lambda: read_checkpoint(str(bad)),
        lambda: load_run(str(bad)),
        lambda: check_resume_checkpoint(str(bad), SEQ_LABELING),
        lambda: resolve_resume_path(str(bad), str(run_copy)),
    ):
        with pytest.raises(CheckpointError, match=r"flipped.ckpt is not a readable checkpoint \(corrupt bytes"):
            load()


def test_a_nan_tensor_in_a_valid_zip_is_refused(run_copy):
    bad = with_nan_adam_state(run_copy / "checkpoints" / "last.ckpt", run_copy / "nan.ckpt")
    reason = verify_checkpoint(str(bad))
    assert reason is not None and "non-finite values" in reason and "exp_avg_sq" in reason, reason
    with pytest.raises(CheckpointError, match=r"nan.ckpt holds non-finite values \(NaN or inf\) in optimizer_states"):
        read_checkpoint(str(bad))
    with pytest.raises(CheckpointError, match="non-finite"):
        load_run(str(bad))
    # NaN weights too (a diverged run saved by hand)
    ckpt = torch.load(run_copy / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    name = next(k for k in ckpt["state_dict"] if "word_embeddings" in k)
    ckpt["state_dict"][name][3, 1] = float("inf")
    torch.save(ckpt, run_copy / "inf.ckpt")
    assert f"state_dict.{name}" in verify_checkpoint(str(run_copy / "inf.ckpt"))


@pytest.mark.parametrize("damage", ["flipped", "nan", "truncated"])
def test_resume_falls_back_to_the_previous_good_checkpoint_with_a_warning(run_copy, caplog, damage):
    last = run_copy / "checkpoints" / "last.ckpt"
    good = next((run_copy / "checkpoints").glob("best*.ckpt"))
    tmp = run_copy / "damaged"
    if damage == "flipped":
        flip_middle(last, tmp)
    elif damage == "nan":
        with_nan_adam_state(last, tmp)
    else:
        tmp.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    os.replace(tmp, last)  # the newest file, as a real last.ckpt would be
    with caplog.at_level(logging.WARNING, logger="bertlab.runs"):
        found = resolve_resume_path("last", str(run_copy))
    assert found == str(good)
    check_resume_checkpoint(found, SEQ_LABELING)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    why = {"flipped": "corrupt bytes", "nan": "non-finite", "truncated": "no zip end record"}[damage]
    assert any(str(last) in w and why in w for w in warnings), warnings
    assert any(f"previous sound checkpoint {good}" in w and "last.ckpt" in w for w in warnings), warnings
    # the folder form resumes the same way; nothing sound left: a fresh start / one line
    assert find_last_checkpoint(str(run_copy)) == str(good)
    good.unlink()
    assert resolve_resume_path("last", str(run_copy)) is None
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        resolve_resume_path(str(run_copy), str(run_copy))


@pytest.mark.slow
def test_evaluate_cli_refuses_a_flipped_checkpoint_in_one_line(run_copy, tmp_path):
    bad = flip_middle(run_copy / "checkpoints" / "last.ckpt", tmp_path / "flipped.ckpt")
    out = tmp_path / "eval_run"
    res = subprocess.run(
        [sys.executable, "-m", "bertlab.evaluate", f"ckpt_path={bad}", f"hydra.run.dir={out}", f"paths.log_dir={out}"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=300,
    )
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(errors) == 1 and f"ckpt_path: {bad} is not a readable checkpoint (corrupt bytes" in errors[0], errors
    assert "Traceback" not in res.stderr
    assert not (out / "metrics.json").exists()
