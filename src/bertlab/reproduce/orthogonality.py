"""Post 4 at small scale: orthogonality regularisers on the sentiment task, 3 seeds each.

Runs ``experiment=orthogonality_sentiment`` (a 2-layer width-256 BERT from scratch, the same
fixed 5k-example training subset and 3 epochs as the ALBERT comparison, the regulariser on the
feed-forward and attention-output kernels of both layers) for these arms, one multirun each:

* ``none``: no regulariser (weight 0);
* ``som`` (the post's Self-Orthogonality Module) at two weights;
* ``soft`` (||W^T W - I||^2) and ``biggan`` (off-diagonal only) at one weight each.

The weights are chosen so that the term is ~0.1-0.3 (SOM 1e-8, soft 1e-4, biggan 1e-3) or
~10x that (SOM 1e-7) of the cross-entropy at the start (see the experiment's header). Table:
epoch-1 / best valid accuracy, test accuracy of the best checkpoint, the kernels' mean
``mean((W^T W - I)^2)`` at the end (post 3's statistic, from the KernelGeometry callback) and
training seconds per epoch; mean +- std over seeds, then one row per run.

Post 3's statistic mixes column norms and angles, so the table also carries its two parts as
fitting ended (``geometry/final_*`` of metrics.json, see
:mod:`bertlab.callbacks.kernel_geometry`): the diagonal part mean((diag(G) - 1)^2), the
off-diagonal part as the mean squared cosine between the distinct vectors of the smaller Gram
side (columns of W^T W; rows for a wide kernel), and the mean squared cosine between the output
filters (rows of W, what SOM acts on) at the end and at step 0, each regulariser's change of the
angles paired with the unregularised run of the same seed.

    python -m bertlab.reproduce orthogonality [--out FILE] [--multirun DIR] [--seeds 1,2,3] [-- key=value ...]
"""

from __future__ import annotations

import statistics
from typing import Any

from bertlab.reporting.seed_sweep import Column, cfg_get, epoch_values, job_config, last_value, unseen_test_acc
from bertlab.reproduce.base import seed_sweep

ARMS = [("none", None), ("som", "1e-8"), ("som", "1e-7"), ("soft", "1e-4"), ("biggan", "1e-3")]
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
    return "none" if kind == "none" or weight in (None, 0, 0.0) else f"{kind} (weight {float(weight):g})"


def job_row(job) -> dict[str, Any]:
    cfg = job_config(job)
    kind = str(cfg_get(cfg, "model.orthogonality.kind", job.params.get("model.orthogonality.kind", "none")))
    weight = cfg_get(cfg, "model.orthogonality.weight", job.params.get("model.orthogonality.weight"))
    vals = epoch_values(job, "val/acc")
    secs = [v for _, v in epoch_values(job, "train/epoch_seconds")]
    epoch1 = [v for e, v in vals if e == 0]
    metrics = job.metrics or {}
    return {
        "arm": arm_name(kind, weight),
        "seed": cfg.get("seed", job.params.get("seed")),
        "epoch1": epoch1[-1] if epoch1 else None,
        "best": max(v for _, v in vals) if vals else None,
        "test": ((job.metrics or {}).get("test") or {}).get("acc"),
        "test_unseen": unseen_test_acc(job),
        "gram": last_value(job, "geometry/gram_dev_mean"),
        "gram_diag": metrics.get("geometry/final_gram_diag_mean"),
        "offdiag_cos2": metrics.get("geometry/final_gram_offdiag_cos2_mean"),
        "filter_cos2_init": metrics.get("geometry/init_filter_cos2_mean"),
        "filter_cos2": metrics.get("geometry/final_filter_cos2_mean"),
        "sec_per_epoch": statistics.mean(secs) if secs else None,
    }


def sweeps(seeds: str) -> list[list[str]]:
    """One multirun per arm (a kind with its own weight is not a cross product)."""
    return [
        [f"model.orthogonality.kind={kind}", *([f"model.orthogonality.weight={w}"] if w else []), f"seed={seeds}"]
        for kind, w in ARMS
    ]


REPRODUCTION = seed_sweep(
    name="orthogonality",
    description="Orthogonality post (4): none / SOM at 2 weights / soft / biggan regularisers, 3 seeds each.",
    published="docs/orthogonality.md",
    experiment="orthogonality_sentiment",
    log_name="orthogonality",
    row=job_row,
    paired=("none", ("test", "offdiag_cos2", "filter_cos2")),
    columns=COLUMNS,
    sweeps=sweeps,
    seeds="1,2,3",
    arms=[arm_name(k, w) for k, w in ARMS],
    title="Orthogonality regularisers (sentiment, 2-layer BERT from scratch, 5k examples, 3 epochs)",
    footer="G is W^T W for a tall kernel (columns) and W W^T for a wide one (rows); the cos² columns "
    "are on normalised vectors, so they measure angles only (0 = orthogonal). "
    "Post 4 reports no BERT results (../shared/spec/methods.md section 4): this table is "
    "bertlab's own measurement, not a reproduction of a number.",
)
