"""NER (post 1 covers NER too): Resume NER (its own train/dev/test) with the CRF at lr
multiplier x1 / x10 / x100 (main lr 1e-3, from scratch, experiment=ner_crf data=ner_resume),
the softmax head and the MEMM head (x10), 3 seeds each, every run stopped after 8 minutes of
training at the latest (``trainer.max_time``).

One multirun per arm (seeds swept), tabulated together (mean ± std per arm, then every run;
the columns: :mod:`bertlab.reporting.ner`).

    python -m bertlab.reproduce ner [--out FILE] [--multirun DIR] [--seeds 1,2,3] [-- overrides ...]

The same arms on People's Daily NER: ``python -m bertlab.reproduce ner_pd`` (module
:mod:`bertlab.reproduce.ner_pd`, built by :func:`ner_reproduction`).
"""

from __future__ import annotations

from bertlab.reporting import ner as tables
from bertlab.reproduce.base import Reproduction, seed_sweep

TYPES = ("NAME", "ORG", "TITLE", "EDU", "PRO", "CONT", "LOC", "RACE")  # conf/data/ner_resume.yaml
BUDGET = "00:00:08:00"
#: arm name (:func:`bertlab.reporting.ner.arm_name` of its runs) -> the overrides of
#: experiment=ner_crf data=ner_resume (which sets CRF x10)
ARMS: dict[str, list[str]] = {
    "CRF x1": ["head=crf", "optimizer.lr_multipliers.crf=1"],
    "CRF x10": ["head=crf", "optimizer.lr_multipliers.crf=10"],
    "CRF x100": ["head=crf", "optimizer.lr_multipliers.crf=100"],
    "Softmax": ["head=softmax", "~optimizer.lr_multipliers.crf"],
    "MEMM x10": ["head=memm", "~optimizer.lr_multipliers.crf", "+optimizer.lr_multipliers.memm=10"],
}


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
) -> Reproduction:
    """The five arms (:data:`ARMS`) x seeds on ``data=<data>``, one multirun per arm."""
    return seed_sweep(
        name=name,
        description=description,
        published=published,
        experiment="ner_crf",
        log_name=f"ner_{data.removeprefix('ner_')}",
        table=tables.table(types, list(ARMS), title, footer),
        sweeps=lambda seeds: sweeps(seeds, data, data_overrides),
        seeds="1,2,3",
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
