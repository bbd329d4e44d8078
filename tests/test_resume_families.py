"""Every task family that trains by epochs, resumed right after each kind of checkpoint
(issue 27 item 1): in the middle of an epoch, at the end of an epoch, and after the last
validation. A kill -9 right after a checkpoint leaves the run folder exactly as it was when
that checkpoint was written (checkpoints are written atomically), so the reference run copies
its checkpoint folder after every save of ``last.ckpt`` (a snapshot), and each snapshot is
resumed with ``ckpt_path=last`` in the same folder. The resumed run must take the same
optimizer steps with the same losses and end with the same metrics as the uninterrupted one.

``trainer.max_steps`` is set (above what two epochs take), as cws_crf and pretrain_mlm set it:
with it, Lightning resumed an end-of-epoch checkpoint by counting that epoch twice, and the
old sampler moved itself to the next epoch on load, so one epoch was never trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
from tests.conftest import TINY_ENCODER, compose_cfg

from bertlab.utils import checkpoint_io

COMMON = [
    "debug=default",
    *TINY_ENCODER,
    "threads=1",
    "logger=csv",
    "callbacks.rich_progress_bar=null",
    "trainer.max_epochs=2",
    "trainer.max_steps=1000",  # step-bounded, as cws_crf: the case Lightning resumed one epoch short
    "trainer.limit_train_batches=5",
    "trainer.val_check_interval=1.0",
    "trainer.check_val_every_n_epoch=1",
    "callbacks.resume_checkpoint.every_n_train_steps=3",  # mid-epoch saves at steps 3, 6, 9
    # no monitor: a checkpoint (and last.ckpt) at every validation (Lightning writes last.ckpt at an
    # epoch end only when it saved a top-k checkpoint there), so the last validation leaves one
    "callbacks.model_checkpoint.monitor=null",
]
FAMILIES = {
    "cws": ["experiment=cws_crf", "data.max_train_chars=4000", "data.max_eval_sentences=10", "data.batch_size=4"],
    "ner": ["experiment=ner_crf", "data.max_train_chars=4000", "data.max_eval_sentences=10", "data.batch_size=4"],
    "triples": ["experiment=triples", "data.max_train_records=40", "data.max_eval_records=8", "data.batch_size=8"],
    "mrc_mlm": ["experiment=mrc_mlm", "data.max_train_questions=40", "data.max_eval_questions=4", "data.batch_size=4"],
    "mrc_seq2seq": [
        "experiment=mrc_seq2seq",
        "data.max_train_questions=40",
        "data.max_eval_questions=4",
        "data.batch_size=4",
    ],
    "classification": [
        "experiment=sentiment_cls",
        "data.max_train_chars=4000",
        "data.max_eval_sentences=10",
        "data.batch_size=4",
    ],
    "generation": [
        "experiment=cond_gen",
        "data.max_train_chars=4000",
        "data.max_eval_sentences=10",
        "data.batch_size=4",
        "model.generation.num_samples=2",
        "model.generation.val_num_samples=2",
        "model.generation.max_len=8",
    ],
    "mlm_pretraining": [
        "experiment=pretrain_mlm",
        "data.max_train_texts=200",
        "data.max_val_texts=10",
        "data.batch_size=8",
        "data.packed_batch_size=2",
    ],
}


class StepLosses(pl.Callback):
    """Appends (global step, training loss) of every optimizer step to a JSON-lines file."""

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps([trainer.global_step, float(loss)]) + "\n")


def _steps(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def _kind(checkpoint: dict[str, Any]) -> str:
    """Where in training a checkpoint was written: 'epoch_end' (after the last batch of an
    epoch, or in on_train_epoch_end) or 'mid_epoch'."""
    fit = checkpoint["loops"]["fit_loop"]
    epoch = fit["epoch_progress"]["current"]
    if epoch["processed"] == epoch["completed"] + 1 or fit["epoch_loop.batch_progress"]["is_last_batch"]:
        return "epoch_end"
    return "mid_epoch"


def _train(out: Path, overrides: list[str], steps_file: Path) -> dict[str, Any]:
    from bertlab.train import train

    cfg = compose_cfg(
        out,
        [
            *COMMON,
            *overrides,
            "+callbacks.steps._target_=tests.test_resume_families.StepLosses",
            f"+callbacks.steps.path={steps_file}",
        ],
    )
    metrics, _ = train(cfg)
    return metrics


def _quality(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a result is made of (not wall times, throughput, paths)."""

    def timing(key: str) -> bool:
        return any(t in key for t in ("time", "per_s", "second", "memory"))

    keep = {k: v for k, v in metrics.items() if "/" in k and not timing(k)}
    keep["test"] = {k: v for k, v in (metrics.get("test") or {}).items() if not timing(k)}
    return keep


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_resume_after_any_checkpoint_equals_the_uninterrupted_run(family, tmp_path, monkeypatch):
    run = tmp_path / "run"
    snaps: list[tuple[Path, str, int]] = []
    save = checkpoint_io.AtomicCheckpointIO.save_checkpoint

    def save_and_snapshot(self, checkpoint, path, storage_options=None):
        save(self, checkpoint, path, storage_options)
        if Path(path).name == "last.ckpt":
            dest = tmp_path / f"snap{len(snaps)}"
            shutil.copytree(Path(path).parent, dest)
            snaps.append((dest, _kind(checkpoint), int(checkpoint["global_step"])))

    monkeypatch.setattr(checkpoint_io.AtomicCheckpointIO, "save_checkpoint", save_and_snapshot)
    ref_metrics = _train(run, FAMILIES[family], tmp_path / "ref.steps")
    monkeypatch.setattr(checkpoint_io.AtomicCheckpointIO, "save_checkpoint", save)
    ref_steps = _steps(tmp_path / "ref.steps")
    assert len(ref_steps) == 10, f"{family}: 2 epochs x 5 batches, got {len(ref_steps)} steps"

    mid = next(s for s in snaps if s[1] == "mid_epoch")
    first_end = next(s for s in snaps if s[1] == "epoch_end")
    chosen = {"mid_epoch": mid, "epoch_end": first_end, "after_last_validation": snaps[-1]}
    assert first_end[2] == 5 and snaps[-1][2] == 10, snaps
    for name, (snap, _, step) in chosen.items():
        shutil.rmtree(run)
        run.mkdir()
        shutil.copytree(snap, run / "checkpoints")
        steps_file = tmp_path / f"{name}.steps"
        resume = ["ckpt_path=last", "resume.also_may_change=[callbacks.steps]"]
        metrics = _train(run, [*FAMILIES[family], *resume], steps_file)
        resumed = _steps(steps_file)
        assert [s for s, _ in resumed] == list(range(step + 1, 11)), f"{family} {name}: steps {resumed}"
        assert resumed == ref_steps[step:], f"{family} {name}: per-step losses differ"
        assert _quality(metrics) == _quality(ref_metrics), f"{family} {name}: final metrics differ"
        # the run's clocks cover the whole run, not the part after the resume
        assert [v["step"] for v in metrics["validation_clock"]] == [v["step"] for v in ref_metrics["validation_clock"]]
        assert len(metrics["train_epoch_seconds"]) == len(ref_metrics["train_epoch_seconds"])
