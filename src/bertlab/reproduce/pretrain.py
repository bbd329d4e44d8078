"""Issue 5: the main CWS job with the small BERT pretrained here vs the same architecture
from scratch, same 5-minute training budget, 3 seeds each.

Runs ``python -m bertlab.train -m experiment=pretrain_compare`` and writes a markdown table:
validation F1 at the first validation (step 150), best validation F1, the last training step
reached in the budget, and PKU test F1 / OOV recall of the best checkpoint; mean +- std over
seeds, then one row per run.

    python -m bertlab.reproduce pretrain [--out FILE] [--multirun DIR] [-- key=value ...]

``-- threads=1`` gives every run one core (the budget is wall time: state the load you ran it
under).
"""

from __future__ import annotations

from typing import Any

from bertlab.reporting.seed_sweep import Column, cfg_get, epoch_values, job_config
from bertlab.reproduce.base import seed_sweep

COLUMNS = [
    Column("first val F1 (%)", "first", 100.0),
    Column("best val F1 (%)", "best", 100.0),
    Column("last step", "steps", 1.0, ".0f"),
    Column("PKU test F1 (%)", "test", 100.0),
    Column("Δ test F1 vs scratch, same seed (pp)", "delta_test", 100.0, "+.2f"),
    Column("test OOV recall (%)", "oov", 100.0),
]


def job_row(job) -> dict[str, Any]:
    cfg = job_config(job)
    pretrained = cfg_get(cfg, "encoder.pretrained", job.params.get("encoder") == "bert_small_pretrained")
    vals = epoch_values(job, "val/f1")
    steps = [r["step"] for r in job.history if "step" in r]
    test = (job.metrics or {}).get("test") or {}
    return {
        "arm": "pretrained (bert_small)" if pretrained else "from scratch",
        "seed": cfg.get("seed", job.params.get("seed")),
        "first": vals[0][1] if vals else None,
        "best": max(v for _, v in vals) if vals else None,
        "steps": max(steps) if steps else None,
        "test": test.get("f1"),
        "oov": test.get("oov_recall"),
    }


REPRODUCTION = seed_sweep(
    name="pretrain",
    description="Pretraining (issue 5): CWS with the small pretrained BERT vs from scratch, 5 min each, 3 seeds.",
    published="docs/pretrain_compare.md",
    experiment="pretrain_compare",
    log_name="pretrain_compare",
    row=job_row,
    paired=("from scratch", "test"),
    columns=COLUMNS,
    arms=["from scratch", "pretrained (bert_small)"],
    title="CWS with the small pretrained BERT vs from scratch (4 x 256, 5 minutes of training)",
)
