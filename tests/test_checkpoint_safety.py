"""Checkpoints are loaded with torch.load(weights_only=True): a file whose pickle would run
code (an object with a malicious ``__reduce__``) is refused with one clear error and the
code never runs, in every loader bertlab has (read_checkpoint, load_run: evaluate, predict,
generate, and the resume check of train). CLI rows: tests/test_bad_input.py (row 12c)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from bertlab.runs import check_resume_checkpoint, load_run, read_checkpoint
from bertlab.utils.errors import CheckpointError

CONFIG = {"model": {"_target_": "bertlab.tasks.sequence_labeling.SequenceLabelingModule"}}


class Payload:
    """Unpickling this runs ``touch <marker>`` (what an attacker's file would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_malicious_checkpoint(path: Path, marker: Path, where: str = "top") -> Path:
    """A checkpoint that looks like bertlab's (state_dict + run config) with a payload hidden
    at the top level, inside the hparams, or in place of a tensor."""
    ckpt = {
        "state_dict": {"w": torch.zeros(2)},
        "global_step": 1,
        "bertlab": {"config": CONFIG},
        "hyper_parameters": {},
    }
    if where == "top":
        ckpt["extra"] = Payload(marker)
    elif where == "hparams":
        ckpt["hyper_parameters"] = {"encoder": Payload(marker)}
    else:
        ckpt["state_dict"]["w"] = Payload(marker)
    torch.save(ckpt, path)
    return path


def test_the_payload_is_live(tmp_path):
    """Sanity: the file really runs code when unpickled the unsafe way."""
    marker = tmp_path / "ran"
    path = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("where", ["top", "hparams", "state_dict"])
@pytest.mark.parametrize("loader", ["read_checkpoint", "load_run", "check_resume_checkpoint"])
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, where, loader):
    marker = tmp_path / "ran"
    path = str(write_malicious_checkpoint(tmp_path / "evil.ckpt", marker, where))
    call = {
        "read_checkpoint": lambda: read_checkpoint(path),
        "load_run": lambda: load_run(path),
        "check_resume_checkpoint": lambda: check_resume_checkpoint(path, CONFIG["model"]["_target_"]),
    }[loader]
    with pytest.raises(
        CheckpointError,
        match=r"holds pickled objects other than tensors and plain data .*system.*refused without unpickling",
    ):
        call()
    assert not marker.exists(), "the checkpoint's code ran"


def test_plain_checkpoints_still_load_and_corrupt_ones_say_so(tmp_path):
    path = tmp_path / "ok.ckpt"
    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "bertlab": {"config": CONFIG}, "rng": [1, 2.5, "x", None, (3,)]}, path
    )
    assert torch.equal(read_checkpoint(str(path))["state_dict"]["w"], torch.ones(2))
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"cut.ckpt is not a readable checkpoint"):
        read_checkpoint(str(cut))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CheckpointError, match=r"garbage.ckpt is not a readable checkpoint"):
        read_checkpoint(str(garbage))
