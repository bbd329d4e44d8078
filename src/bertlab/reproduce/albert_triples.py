"""Post 2 where the post saw its largest effect: shared vs unshared ALBERT on triple
extraction (post 5's task), 3 seeds each.

Runs ``python -m bertlab.train -m experiment=albert_triples`` (both arms from the SAME
pretrained small ALBERT, LIC2019 subset, 30 epochs, validation every epoch on the 200
selection records) and writes a markdown table (:data:`bertlab.reporting.albert.TRIPLES`):
epoch-1 validation F1 (the post's headline: 61.11 unshared vs 46.58 shared), best validation
F1, the mean validation F1 over all epochs (the area under the learning curve: which arm gets
there first, readable while epoch 1 is still at 0), F1 on the 800 report records (best
checkpoint), the mean training loss over epoch 1 and over the last epoch (convergence on the
training records, readable when no triple is found yet), training seconds per epoch (training
batches only) and each fit's peak memory; mean +- std over seeds, the paired difference
unshared - shared per seed, then one row per run; and the learning curves next to the table
(``<out stem>_curve.png``). ``make reproduce-albert`` runs it after the sentiment comparison
(:mod:`bertlab.reproduce.albert`).

    python -m bertlab.reproduce albert_triples [--out FILE] [--multirun DIR] [-- key=value ...]
"""

from __future__ import annotations

from bertlab.reporting import albert as tables
from bertlab.reproduce.base import seed_sweep

REPRODUCTION = seed_sweep(
    name="albert_triples",
    description="ALBERT post (2) on triple extraction: shared vs unshared, 3 seeds each, from data/pretrained/albert_small.",
    published="docs/albert_triples.md",
    experiment="albert_triples",
    log_name="albert_triples",
    table=tables.TRIPLES,
)
