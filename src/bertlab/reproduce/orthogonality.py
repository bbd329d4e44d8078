"""Post 4 at small scale: orthogonality regularisers on the sentiment task, 3 seeds each.

Runs ``experiment=orthogonality_sentiment`` (a 2-layer width-256 BERT from scratch, the same
fixed 5k-example training subset and 3 epochs as the ALBERT comparison, the regulariser on the
feed-forward and attention-output kernels of both layers) for these arms, one multirun each:

* ``none``: no regulariser (weight 0);
* ``som`` (the post's Self-Orthogonality Module) at two weights;
* ``soft`` (||W^T W - I||^2) and ``biggan`` (off-diagonal only) at one weight each.

The weights are chosen so that the term is ~0.1-0.3 (SOM 1e-8, soft 1e-4, biggan 1e-3) or
~10x that (SOM 1e-7) of the cross-entropy at the start (see the experiment's header). The table
(:mod:`bertlab.reporting.orthogonality`): accuracies, post 3's kernel statistic and its parts
(diagonal, off-diagonal angles, filter angles), each regulariser paired with the unregularised
run of the same seed; mean +- std over seeds, then one row per run.

    python -m bertlab.reproduce orthogonality [--out FILE] [--multirun DIR] [--seeds 1,2,3] [-- key=value ...]
"""

from __future__ import annotations

from bertlab.reporting import orthogonality as tables
from bertlab.reproduce.base import seed_sweep

#: (regulariser kind, weight), one multirun each
ARMS = [("none", None), ("som", "1e-8"), ("som", "1e-7"), ("soft", "1e-4"), ("biggan", "1e-3")]


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
    table=tables.table(ARMS),
    sweeps=sweeps,
    seeds="1,2,3",
)
