"""Post 2 at small scale: shared vs unshared ALBERT on the sentiment task, 3 seeds each.

Runs ``python -m bertlab.train -m experiment=albert_compare`` (both arms from the SAME
pretrained small ALBERT, a fixed 5k-example training subset, 3 epochs, validation every
epoch) and writes a markdown table (:data:`bertlab.reporting.albert.SENTIMENT`): epoch-1 valid
accuracy (the post's headline: unsharing mainly speeds up early convergence), best valid
accuracy, test accuracy (of the best checkpoint) and training seconds per epoch, mean +- std
over seeds, plus one row per run.

    python -m bertlab.reproduce albert [--out FILE] [--multirun DIR] [-- key=value ...]

``--multirun DIR``: summarise an existing sweep folder instead of running one. Anything
after ``--`` is passed to the training command (e.g. ``encoder.pretrained=<dir>``).
"""

from __future__ import annotations

from bertlab.reporting import albert as tables
from bertlab.reproduce.base import seed_sweep

REPRODUCTION = seed_sweep(
    name="albert",
    description="ALBERT post (2): shared vs unshared, 3 seeds each, from data/pretrained/albert_small.",
    published="docs/albert_unshared.md",
    experiment="albert_compare",
    log_name="albert_compare",
    table=tables.SENTIMENT,
)
