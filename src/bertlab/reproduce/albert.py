"""Post 2 at small scale: shared vs unshared ALBERT on the sentiment task, 3 seeds each.

Runs ``python -m bertlab.train -m experiment=albert_compare`` (both arms from the SAME
pretrained small ALBERT, a fixed 5k-example training subset, 3 epochs, validation every
epoch) and writes a markdown table: epoch-1 valid accuracy (the post's headline: unsharing
mainly speeds up early convergence), best valid accuracy, test accuracy (of the best
checkpoint) and training seconds per epoch, mean +- std over seeds, plus one row per run.

    python -m bertlab.reproduce albert [--out FILE] [--multirun DIR] [-- key=value ...]

``--multirun DIR``: summarise an existing sweep folder instead of running one. Anything
after ``--`` is passed to the training command (e.g. ``encoder.pretrained=<dir>``).
"""

from __future__ import annotations

import statistics
from typing import Any

from bertlab.reporting.seed_sweep import Column, cfg_get, epoch_values, job_config, unseen_test_acc
from bertlab.reproduce.base import seed_sweep

COLUMNS = [
    Column("epoch-1 valid acc (%)", "epoch1", 100.0),
    Column("best valid acc (%)", "best", 100.0),
    Column("test acc (%)", "test", 100.0),
    Column("Δ test acc vs shared, same seed (pp)", "delta_test", 100.0, "+.2f"),
    Column("test acc, texts not in train (%)", "test_unseen", 100.0),
    Column("train s / epoch", "sec_per_epoch"),
]


def albert_row(job, metric: str) -> dict[str, Any]:
    """What both ALBERT comparisons read of a run: its arm (shared / unshared), seed, and
    ``val/<metric>`` after epoch 1 and at its best."""
    cfg = job_config(job)
    unshared = bool(cfg_get(cfg, "encoder.albert_unshared", job.params.get("encoder.albert_unshared") == "true"))
    vals = epoch_values(job, f"val/{metric}")
    epoch1 = [v for e, v in vals if e == 0]
    return {
        "arm": "unshared" if unshared else "shared",
        "seed": cfg.get("seed", job.params.get("seed")),
        "epoch1": epoch1[-1] if epoch1 else None,
        "best": max(v for _, v in vals) if vals else None,
    }


def job_row(job) -> dict[str, Any]:
    secs = [v for _, v in epoch_values(job, "train/epoch_seconds")]
    return {
        **albert_row(job, "acc"),
        "test": ((job.metrics or {}).get("test") or {}).get("acc"),
        "test_unseen": unseen_test_acc(job),
        "sec_per_epoch": statistics.mean(secs) if secs else None,
    }


REPRODUCTION = seed_sweep(
    name="albert",
    description="ALBERT post (2): shared vs unshared, 3 seeds each, from data/pretrained/albert_small.",
    published="docs/albert_unshared.md",
    experiment="albert_compare",
    log_name="albert_compare",
    row=job_row,
    paired=("shared", "test"),
    columns=COLUMNS,
    title="ALBERT shared vs unshared (sentiment, 5k training examples, 3 epochs)",
    arms=["shared", "unshared"],
    footer="Post (ALBERT small, full data, 10 epochs, mean of 3): valid/test small_unshared 94.66/94.35, "
    "small 94.57/94.52; 38 vs 33 s/epoch.",
)
