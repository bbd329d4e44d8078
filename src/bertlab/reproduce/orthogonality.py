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
training seconds per epoch; mean +- std over seeds, then one row per run
(:mod:`bertlab.reporting.orthogonality`).

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
