"""Post 4's table (``python -m bertlab.reproduce orthogonality``): orthogonality regularisers x
seeds (:mod:`bertlab.reporting.seed_sweep`).

Epoch-1 / best valid accuracy, test accuracy of the best checkpoint (and on the texts not in
train), the kernels' mean ``mean((W^T W - I)^2)`` at the end (post 3's statistic, from the
KernelGeometry callback), its two parts as fitting ended (``geometry/final_*`` of metrics.json,
see :mod:`bertlab.callbacks.kernel_geometry`): the diagonal part mean((diag(G) - 1)^2), the
off-diagonal part as the mean squared cosine between the distinct vectors of the smaller Gram
side, and the mean squared cosine between the output filters (rows of W, what SOM acts on) at
the end and at step 0, each regulariser's change of the angles paired with the unregularised
run of the same seed; training seconds per epoch.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bertlab.reporting.run_folder import Run
from bertlab.reporting.seed_sweep import Column, SeedSweepTable, unseen_test_acc

COLUMNS = [
    Column("epoch-1 valid acc (%)", "epoch1", 100.0),
    Column("best valid acc (%)", "best", 100.0),
    Column("test acc (%)", "test", 100.0),
    Column("Δ test acc vs none, same seed (pp)", "delta_test", 100.0, "+.2f"),
    Column("test acc, texts not in train (%)", "test_unseen", 100.0),
    Column("kernel mean((WᵀW-I)²) at end", "gram", 1.0, ".2e"),
    Column("diagonal part mean((diag G-1)²) at end", "gram_diag", 1.0, ".2e"),
    Column("off-diagonal: mean cos² between Gram-side vectors at end", "offdiag_cos2", 1.0, ".2e"),
    Column("Δ off-diagonal cos² vs none, same seed", "delta_offdiag_cos2", 1.0, "+.2e"),
    Column("filter (row) mean cos² at step 0", "filter_cos2_init", 1.0, ".2e"),
    Column("filter (row) mean cos² at end", "filter_cos2", 1.0, ".2e"),
    Column("Δ filter cos² vs none, same seed", "delta_filter_cos2", 1.0, "+.2e"),
    Column("train s / epoch", "sec_per_epoch", 1.0, ".1f"),
]


def arm_name(kind: str, weight: Any) -> str:
    """The arm of a run: "none", else "<kind> (weight <w>)"."""
    return "none" if kind == "none" or weight in (None, 0, 0.0) else f"{kind} (weight {float(weight):g})"


def job_row(job: Run) -> dict[str, Any]:
    kind = str(job.cfg("model.orthogonality.kind", job.params.get("model.orthogonality.kind", "none")))
    weight = job.cfg("model.orthogonality.weight", job.params.get("model.orthogonality.weight"))
    vals = job.values("val/acc")
    secs = [v for _, v in job.values("train/epoch_seconds")]
    epoch1 = [v for e, v in vals if e == 0]
    metrics = job.metrics or {}
    return {
        "arm": arm_name(kind, weight),
        "seed": job.config.get("seed", job.params.get("seed")),
        "epoch1": epoch1[-1] if epoch1 else None,
        "best": max(v for _, v in vals) if vals else None,
        "test": job.test.get("acc"),
        "test_unseen": unseen_test_acc(job),
        "gram": job.last("geometry/gram_dev_mean"),
        "gram_diag": metrics.get("geometry/final_gram_diag_mean"),
        "offdiag_cos2": metrics.get("geometry/final_gram_offdiag_cos2_mean"),
        "filter_cos2_init": metrics.get("geometry/init_filter_cos2_mean"),
        "filter_cos2": metrics.get("geometry/final_filter_cos2_mean"),
        "sec_per_epoch": statistics.mean(secs) if secs else None,
    }


def table(arms: Sequence[tuple[str, Any]]) -> SeedSweepTable:
    """The table of the ``(kind, weight)`` arms, in that order."""
    return SeedSweepTable(
        title="Orthogonality regularisers (sentiment, 2-layer BERT from scratch, 5k examples, 3 epochs)",
        row=job_row,
        columns=COLUMNS,
        arms=[arm_name(k, w) for k, w in arms],
        paired=("none", ("test", "offdiag_cos2", "filter_cos2")),
        footer="G is W^T W for a tall kernel (columns) and W W^T for a wide one (rows); the cos² columns "
        "are on normalised vectors, so they measure angles only (0 = orthogonal). "
        "Post 4 reports no BERT results (../shared/spec/methods.md section 4): this table is "
        "bertlab's own measurement, not a reproduction of a number.",
    )
