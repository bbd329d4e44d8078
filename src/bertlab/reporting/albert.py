"""Post 2's tables (``python -m bertlab.reproduce albert | albert_triples``): shared vs unshared
ALBERT, arms x seeds (:mod:`bertlab.reporting.seed_sweep`).

* :data:`SENTIMENT`: epoch-1 valid accuracy (the post's headline: unsharing mainly speeds up
  early convergence), best valid accuracy, test accuracy (of the best checkpoint), on the texts
  not in train, and training seconds per epoch;
* :data:`TRIPLES`: epoch-1 / best validation F1, the mean validation F1 over all epochs (the
  area under the learning curve), F1 on the report records (best checkpoint), the mean training
  loss over epoch 1 and over the last epoch, training seconds per epoch and peak memory; each
  paired unshared - shared per seed; and the learning curves next to the table.
"""

from __future__ import annotations

import statistics
from typing import Any

from bertlab.reporting.run_folder import Run
from bertlab.reporting.seed_sweep import Column, SeedSweepTable, unseen_test_acc

ARMS = ["shared", "unshared"]


def albert_row(job: Run, metric: str) -> dict[str, Any]:
    """What both ALBERT comparisons read of a run: its arm (shared / unshared), seed, and
    ``val/<metric>`` after epoch 1 and at its best."""
    unshared = bool(job.cfg("encoder.albert_unshared", job.params.get("encoder.albert_unshared") == "true"))
    vals = job.values(f"val/{metric}")
    epoch1 = [v for e, v in vals if e == 0]
    return {
        "arm": "unshared" if unshared else "shared",
        "seed": job.config.get("seed", job.params.get("seed")),
        "epoch1": epoch1[-1] if epoch1 else None,
        "best": max(v for _, v in vals) if vals else None,
    }


def sentiment_row(job: Run) -> dict[str, Any]:
    secs = [v for _, v in job.values("train/epoch_seconds")]
    return {
        **albert_row(job, "acc"),
        "test": job.test.get("acc"),
        "test_unseen": unseen_test_acc(job),
        "sec_per_epoch": statistics.mean(secs) if secs else None,
    }


SENTIMENT = SeedSweepTable(
    title="ALBERT shared vs unshared (sentiment, 5k training examples, 3 epochs)",
    row=sentiment_row,
    columns=[
        Column("epoch-1 valid acc (%)", "epoch1", 100.0),
        Column("best valid acc (%)", "best", 100.0),
        Column("test acc (%)", "test", 100.0),
        Column("Δ test acc vs shared, same seed (pp)", "delta_test", 100.0, "+.2f"),
        Column("test acc, texts not in train (%)", "test_unseen", 100.0),
        Column("train s / epoch", "sec_per_epoch"),
    ],
    arms=ARMS,
    paired=("shared", "test"),
    footer="Post (ALBERT small, full data, 10 epochs, mean of 3): valid/test small_unshared 94.66/94.35, "
    "small 94.57/94.52; 38 vs 33 s/epoch.",
)


def first_last_epoch_loss(job: Run) -> tuple[float | None, float | None]:
    """Mean logged ``train/loss`` over the first and over the last epoch of a run: how fast each
    arm fits its training records, readable even while no triple is found yet."""
    by_epoch: dict[float, list[float]] = {}
    for epoch, v in job.values("train/loss"):
        by_epoch.setdefault(float(epoch), []).append(float(v))
    if not by_epoch:
        return None, None
    return statistics.mean(by_epoch[min(by_epoch)]), statistics.mean(by_epoch[max(by_epoch)])


def triples_row(job: Run) -> dict[str, Any]:
    metrics = job.metrics or {}
    secs = metrics.get("train_epoch_seconds") or [v for _, v in job.values("time/epoch_train_seconds")]
    mem = [v for _, v in job.values("time/peak_memory_mb")]
    curve = [float(v) for _, v in job.values("val/f1")]
    loss_first, loss_last = first_last_epoch_loss(job)
    return {
        **albert_row(job, "f1"),
        "test": job.test.get("f1"),
        "sec_per_epoch": statistics.mean(secs) if secs else None,
        "peak_mb": max(mem) if mem else None,
        "curve_mean": statistics.mean(curve) if curve else None,
        "loss_epoch1": loss_first,
        "loss_last": loss_last,
    }


TRIPLES = SeedSweepTable(
    title="ALBERT shared vs unshared on triple extraction (LIC2019 subset)",
    row=triples_row,
    columns=[
        Column("epoch-1 val F1 (%)", "epoch1", 100.0),
        Column("Δ epoch-1 val F1 vs shared, same seed (pp)", "delta_epoch1", 100.0, "+.2f"),
        Column("best val F1 (%)", "best", 100.0),
        Column("Δ best val F1 vs shared, same seed (pp)", "delta_best", 100.0, "+.2f"),
        Column("mean val F1 over epochs (%)", "curve_mean", 100.0),
        Column("Δ mean val F1 vs shared, same seed (pp)", "delta_curve_mean", 100.0, "+.2f"),
        Column("report F1 (%)", "test", 100.0),
        Column("Δ report F1 vs shared, same seed (pp)", "delta_test", 100.0, "+.2f"),
        Column("train loss, epoch 1", "loss_epoch1", 1.0, ".4f"),
        Column("Δ train loss epoch 1 vs shared", "delta_loss_epoch1", 1.0, "+.4f"),
        Column("train loss, last epoch", "loss_last", 1.0, ".4f"),
        Column("Δ train loss last epoch vs shared", "delta_loss_last", 1.0, "+.4f"),
        Column("train s / epoch", "sec_per_epoch", 1.0, ".1f"),
        Column("Δ train s / epoch vs shared", "delta_sec_per_epoch", 1.0, "+.1f"),
        Column("peak memory (MiB)", "peak_mb", 1.0, ".0f"),
    ],
    arms=ARMS,
    paired=("shared", ("epoch1", "best", "curve_mean", "test", "loss_epoch1", "loss_last", "sec_per_epoch")),
    curve=("val/f1", "validation F1"),
    footer="Post (ALBERT small, LIC2019 / DuIE, epoch-1 F1): unshared 61.11 vs shared 46.58; unsharing costs "
    "10-20% more time. Validation = dev records 1-200, report = dev records 201-1000.",
)
