"""Issue 5: the main CWS job with the small BERT pretrained here vs the same architecture
from scratch, same 5-minute training budget, 3 seeds each.

Runs ``python -m bertlab.train -m experiment=pretrain_compare`` and writes a markdown table:
validation F1 at the first validation (step 150), best validation F1, the last training step
reached in the budget, and PKU test F1 / OOV recall of the best checkpoint; mean +- std over
seeds, then one row per run (:mod:`bertlab.reporting.pretrain`).

    python -m bertlab.reproduce pretrain [--out FILE] [--multirun DIR] [-- key=value ...]

``-- threads=1`` gives every run one core (the budget is wall time: state the load you ran it
under).
"""

from __future__ import annotations

from bertlab.reporting import pretrain as tables
from bertlab.reproduce.base import seed_sweep

REPRODUCTION = seed_sweep(
    name="pretrain",
    description="Pretraining (issue 5): CWS with the small pretrained BERT vs from scratch, 5 min each, 3 seeds.",
    published="docs/pretrain_compare.md",
    experiment="pretrain_compare",
    log_name="pretrain_compare",
    table=tables.TABLE,
)
