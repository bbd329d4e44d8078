"""NER (post 1 covers NER too): Resume NER (its own train/dev/test) with the CRF at lr
multiplier x1 / x10 / x100 (main lr 1e-3, from scratch, experiment=ner_crf data=ner_resume),
the softmax head and the MEMM head (x10), 3 seeds each, every run stopped after 8 minutes of
training at the latest (``trainer.max_time``).

One multirun per arm (seeds swept), tabulated together (mean ± std per arm, then every run):
epoch-1 / best validation entity F1, test entity precision / recall / F1 (micro, seqeval's
strict mode) of the best-validation checkpoint and the test F1 per entity type; for the heads
with transitions, max |transitions - init| and the share of impossible moves (after B-X or
M-X anything but M-X / E-X; M-X / E-X after anything but B-X / M-X) that score below zero at
the end and at the init.

    python -m bertlab.reproduce ner [--out FILE] [--multirun DIR] [--seeds 1,2,3] [-- overrides ...]

The same arms on People's Daily NER: ``python -m bertlab.reproduce ner_pd`` (module
:mod:`bertlab.reproduce.ner_pd`, built by :func:`ner_reproduction`).
"""

from __future__ import annotations

from typing import Any

from bertlab.reporting.seed_sweep import Column, cfg_get, epoch_values, job_config
from bertlab.reporting.tables import (
    count_negative,
    impossible_moves,
    read_matrix,
    reported_transitions,
    transition_files,
)
from bertlab.reproduce.base import seed_sweep

TYPES = ("NAME", "ORG", "TITLE", "EDU", "PRO", "CONT", "LOC", "RACE")  # conf/data/ner_resume.yaml
BUDGET = "00:00:08:00"
#: arm name -> the overrides of experiment=ner_crf data=ner_resume (which sets CRF x10)
ARMS: dict[str, list[str]] = {
    "CRF x1": ["head=crf", "optimizer.lr_multipliers.crf=1"],
    "CRF x10": ["head=crf", "optimizer.lr_multipliers.crf=10"],
    "CRF x100": ["head=crf", "optimizer.lr_multipliers.crf=100"],
    "Softmax": ["head=softmax", "~optimizer.lr_multipliers.crf"],
    "MEMM x10": ["head=memm", "~optimizer.lr_multipliers.crf", "+optimizer.lr_multipliers.memm=10"],
}


def columns(types: tuple[str, ...]) -> list[Column]:
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


COLUMNS = columns(TYPES)


def arm_name(head: str, mult: Any) -> str:
    if head == "softmax":
        return "Softmax"
    return f"{head.upper()} x{float(mult if mult is not None else 1):g}"


def job_row(job, types: tuple[str, ...] = TYPES) -> dict[str, Any]:
    cfg = job_config(job)
    head = str(cfg_get(cfg, "head.type", job.params.get("head", "crf")))
    mult = cfg_get(cfg, f"optimizer.lr_multipliers.{head}")
    vals = epoch_values(job, "val/f1")
    epoch1 = [v for e, v in vals if e == 0]
    test = (job.metrics or {}).get("test") or {}
    per_type = test.get("per_type") or {}
    row: dict[str, Any] = {
        "arm": arm_name(head, mult),
        "seed": cfg.get("seed", job.params.get("seed")),
        "epoch1": epoch1[-1] if epoch1 else None,
        "best": max(v for _, v in vals) if vals else None,
        "precision": test.get("precision"),
        "recall": test.get("recall"),
        "test": test.get("f1"),
        **{f"f1_{t}": (per_type.get(t) or {}).get("f1") for t in types},
    }
    files, reported = transition_files(job.path), reported_transitions(job.path)
    if files and reported is not None:
        names, init = read_matrix(files[0])
        _, last = read_matrix(reported[0])
        row["matrix_of"] = reported[1]
        moves = impossible_moves(names)
        row["moved"] = max(abs(a - b) for ra, rb in zip(init, last) for a, b in zip(ra, rb))
        if moves:
            row["impossible_neg"] = count_negative(names, last, moves) / len(moves)
            row["impossible_neg_init"] = count_negative(names, init, moves) / len(moves)
    return row


def sweeps(seeds: str, data: str = "ner_resume", data_overrides: tuple[str, ...] = ()) -> list[list[str]]:
    """One multirun per arm, over the seeds."""
    return [
        [f"data={data}", *data_overrides, *o, f"++trainer.max_time={BUDGET}", f"seed={seeds}"] for o in ARMS.values()
    ]


def ner_reproduction(
    name: str,
    data: str,
    types: tuple[str, ...],
    published: str,
    title: str,
    footer: str,
    description: str,
    data_overrides: tuple[str, ...] = (),
) -> Any:
    """The five arms (:data:`ARMS`) x seeds on ``data=<data>``, one multirun per arm."""
    return seed_sweep(
        name=name,
        description=description,
        published=published,
        experiment="ner_crf",
        log_name=f"ner_{data.removeprefix('ner_')}",
        row=lambda job: job_row(job, types),
        paired=("CRF x1", "test"),
        columns=columns(types),
        sweeps=lambda seeds: sweeps(seeds, data, data_overrides),
        seeds="1,2,3",
        arms=list(ARMS),
        title=title,
        footer="Entity scores: seqeval strict mode (an entity counts when its type, start and end equal a gold one's). "
        + footer,
    )


REPRODUCTION = ner_reproduction(
    name="ner",
    data="ner_resume",
    types=TYPES,
    published="docs/ner.md",
    description="CRF post (1) on NER: Resume NER with CRF x1 / x10 / x100, softmax and MEMM heads, 3 seeds each.",
    title="Resume NER: CRF lr multiplier x1 / x10 / x100, softmax and MEMM heads (from scratch, main lr 1e-3)",
    footer="The post reports no Resume NER numbers: this table is bertlab's own measurement.",
)
