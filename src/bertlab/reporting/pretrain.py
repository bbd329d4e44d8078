"""Issue 5's table (``python -m bertlab.reproduce pretrain``): the small pretrained BERT vs the
same architecture from scratch on CWS, x seeds (:mod:`bertlab.reporting.seed_sweep`):
validation F1 at the first validation, best validation F1, the last training step reached in
the budget, and PKU test F1 / OOV recall of the best checkpoint."""

from __future__ import annotations

from typing import Any

from bertlab.reporting.run_folder import Run
from bertlab.reporting.seed_sweep import Column, SeedSweepTable


def job_row(job: Run) -> dict[str, Any]:
    pretrained = job.cfg("encoder.pretrained", job.params.get("encoder") == "bert_small_pretrained")
    vals = job.values("val/f1")
    steps = [r["step"] for r in job.history if "step" in r]
    test = job.test
    return {
        "arm": "pretrained (bert_small)" if pretrained else "from scratch",
        "seed": job.config.get("seed", job.params.get("seed")),
        "first": vals[0][1] if vals else None,
        "best": max(v for _, v in vals) if vals else None,
        "steps": max(steps) if steps else None,
        "test": test.get("f1"),
        "oov": test.get("oov_recall"),
    }


TABLE = SeedSweepTable(
    title="CWS with the small pretrained BERT vs from scratch (4 x 256, 5 minutes of training)",
    row=job_row,
    columns=[
        Column("first val F1 (%)", "first", 100.0),
        Column("best val F1 (%)", "best", 100.0),
        Column("last step", "steps", 1.0, ".0f"),
        Column("PKU test F1 (%)", "test", 100.0),
        Column("Δ test F1 vs scratch, same seed (pp)", "delta_test", 100.0, "+.2f"),
        Column("test OOV recall (%)", "oov", 100.0),
    ],
    arms=["from scratch", "pretrained (bert_small)"],
    paired=("from scratch", "test"),
)
