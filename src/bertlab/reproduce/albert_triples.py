"""Post 2 where the post saw its largest effect: shared vs unshared ALBERT on triple
extraction (post 5's task), 3 seeds each.

Runs ``python -m bertlab.train -m experiment=albert_triples`` (both arms from the SAME
pretrained small ALBERT, LIC2019 subset, 30 epochs, validation every epoch on the 200
selection records) and writes a markdown table: epoch-1 validation F1 (the post's headline:
61.11 unshared vs 46.58 shared), best validation F1, the mean validation F1 over all epochs
(the area under the learning curve: which arm gets there first, readable while epoch 1 is
still at 0), F1 on the 800 report records (best checkpoint), the mean training loss over
epoch 1 and over the last epoch (convergence on the training records, readable when no
triple is found yet), training seconds per epoch (training batches only) and each fit's
peak memory; mean +- std over seeds, the paired difference unshared - shared per seed, then
one row per run; and the learning curves next to the table (``<out stem>_curve.png``).
``make reproduce-albert`` runs it after the sentiment comparison
(:mod:`bertlab.reproduce.albert`).

    python -m bertlab.reproduce albert_triples [--out FILE] [--multirun DIR] [-- key=value ...]
"""

from __future__ import annotations

import statistics
from typing import Any

from bertlab.reporting.seed_sweep import Column, epoch_values
from bertlab.reproduce.albert import albert_row
from bertlab.reproduce.base import seed_sweep

COLUMNS = [
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
]


def first_last_epoch_loss(job) -> tuple[float | None, float | None]:
    """Mean logged ``train/loss`` over the first and over the last epoch of a run: how fast each
    arm fits its training records, readable even while no triple is found yet."""
    by_epoch: dict[float, list[float]] = {}
    for epoch, v in epoch_values(job, "train/loss"):
        by_epoch.setdefault(float(epoch), []).append(float(v))
    if not by_epoch:
        return None, None
    return statistics.mean(by_epoch[min(by_epoch)]), statistics.mean(by_epoch[max(by_epoch)])


def job_row(job) -> dict[str, Any]:
    metrics = job.metrics or {}
    secs = metrics.get("train_epoch_seconds") or [v for _, v in epoch_values(job, "time/epoch_train_seconds")]
    mem = [v for _, v in epoch_values(job, "time/peak_memory_mb")]
    curve = [float(v) for _, v in epoch_values(job, "val/f1")]
    loss_first, loss_last = first_last_epoch_loss(job)
    return {
        **albert_row(job, "f1"),
        "test": (metrics.get("test") or {}).get("f1"),
        "sec_per_epoch": statistics.mean(secs) if secs else None,
        "peak_mb": max(mem) if mem else None,
        "curve_mean": statistics.mean(curve) if curve else None,
        "loss_epoch1": loss_first,
        "loss_last": loss_last,
    }


REPRODUCTION = seed_sweep(
    name="albert_triples",
    description="ALBERT post (2) on triple extraction: shared vs unshared, 3 seeds each, from data/pretrained/albert_small.",
    published="docs/albert_triples.md",
    experiment="albert_triples",
    log_name="albert_triples",
    row=job_row,
    paired=("shared", ("epoch1", "best", "curve_mean", "test", "loss_epoch1", "loss_last", "sec_per_epoch")),
    columns=COLUMNS,
    title="ALBERT shared vs unshared on triple extraction (LIC2019 subset)",
    arms=["shared", "unshared"],
    curve=("val/f1", "validation F1"),
    footer="Post (ALBERT small, LIC2019 / DuIE, epoch-1 F1): unshared 61.11 vs shared 46.58; unsharing costs "
    "10-20% more time. Validation = dev records 1-200, report = dev records 201-1000.",
)
