"""The NER tables of the CRF post (``python -m bertlab.reproduce ner | ner_pd``): CRF x1 / x10 /
x100, softmax and MEMM arms x seeds (:mod:`bertlab.reporting.seed_sweep`).

Per arm (mean ± std) and per run: epoch-1 / best validation entity F1, test entity precision /
recall / F1 (micro, seqeval's strict mode) of the best-validation checkpoint and the test F1 per
entity type; for the heads with transitions, max |transitions - init| and the share of
impossible moves (after B-X or M-X anything but M-X / E-X; M-X / E-X after anything but B-X /
M-X; in BIO, I-X after anything but B-X / I-X) that score below zero at the end and at the init.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bertlab.reporting.run_folder import Run
from bertlab.reporting.seed_sweep import Column, SeedSweepTable
from bertlab.reporting.tables import count_negative, impossible_moves, learned_transitions


def columns(types: Sequence[str]) -> list[Column]:
    return [
        Column("val F1 epoch 1 (%)", "epoch1", 100.0),
        Column("best val F1 (%)", "best", 100.0),
        Column("test P (%)", "precision", 100.0),
        Column("test R (%)", "recall", 100.0),
        Column("test F1 (%)", "test", 100.0),
        Column("Δ test F1 vs CRF x1, same seed (pp)", "delta_test", 100.0, "+.2f"),
        *(Column(f"test F1 {t} (%)", f"f1_{t}", 100.0) for t in types),
        Column("max abs(trans - init)", "moved", 1.0, ".3f"),
        Column("impossible moves < 0, best ckpt (%)", "impossible_neg", 100.0, ".1f"),
        Column("impossible moves < 0 at init (%)", "impossible_neg_init", 100.0, ".1f"),
    ]


def arm_name(head: str, mult: Any) -> str:
    """The arm of a run: "Softmax", else "<HEAD> x<lr multiplier>"."""
    if head == "softmax":
        return "Softmax"
    return f"{head.upper()} x{float(mult if mult is not None else 1):g}"


def job_row(job: Run, types: Sequence[str]) -> dict[str, Any]:
    head = str(job.cfg("head.type", job.params.get("head", "crf")))
    vals = job.values("val/f1")
    epoch1 = [v for e, v in vals if e == 0]
    test = job.test
    per_type = test.get("per_type") or {}
    row: dict[str, Any] = {
        "arm": arm_name(head, job.cfg(f"optimizer.lr_multipliers.{head}")),
        "seed": job.config.get("seed", job.params.get("seed")),
        "epoch1": epoch1[-1] if epoch1 else None,
        "best": max(v for _, v in vals) if vals else None,
        "precision": test.get("precision"),
        "recall": test.get("recall"),
        "test": test.get("f1"),
        **{f"f1_{t}": (per_type.get(t) or {}).get("f1") for t in types},
    }
    trans = learned_transitions(job.path)
    if trans is not None:
        row["matrix_of"] = trans.of
        moves = impossible_moves(trans.names)
        row["moved"] = trans.moved
        if moves:
            row["impossible_neg"] = count_negative(trans.names, trans.last, moves) / len(moves)
            row["impossible_neg_init"] = count_negative(trans.names, trans.init, moves) / len(moves)
    return row


def table(types: Sequence[str], arms: Sequence[str], title: str, footer: str) -> SeedSweepTable:
    """The table of one corpus: its entity ``types`` (a column each), the ``arms`` in order."""
    return SeedSweepTable(
        title=title,
        row=lambda job: job_row(job, types),
        columns=columns(types),
        arms=list(arms),
        paired=("CRF x1", "test"),
        footer="Entity scores: seqeval strict mode (an entity counts when its type, start and end equal a gold one's). "
        + footer,
    )
