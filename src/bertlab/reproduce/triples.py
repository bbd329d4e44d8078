"""Triple extraction (post 5): from scratch, the overfit check, and the small pretrained BERT
when data/pretrained/bert_small exists; one run each into ``--dir`` (default
logs/reproduce/triples), then ``results.md`` there.

    python -m bertlab.reproduce triples [--dir DIR] [--out FILE] [--report-only] [-- overrides ...]

The table (:mod:`bertlab.reporting.triples`): one row per run with the test split's P/R/F1, the
dictionary-match baseline on the same records, decoding speed and wall time.
"""

from __future__ import annotations

import argparse

from bertlab.reporting import triples as tables
from bertlab.reproduce.base import (
    ROOT,
    Command,
    Reproduction,
    add_run_dir_arguments,
    out_file,
    path_exists,
    run_dir,
    train,
)

PRETRAINED = ROOT / "data" / "pretrained" / "bert_small"


def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
    d = args.dir
    return [
        train("experiment=triples", f"hydra.run.dir={d}/scratch", *overrides),
        train("experiment=triples_overfit", f"hydra.run.dir={d}/overfit", *overrides),
        train(
            "experiment=triples",
            "encoder=bert_small_pretrained",
            f"hydra.run.dir={d}/pretrained",
            *overrides,
            only_if=path_exists(PRETRAINED.relative_to(ROOT)),
        ),
    ]


def report(args: argparse.Namespace) -> int:
    d = run_dir(args)
    labels = ["scratch", *(["pretrained"] if (d / "pretrained").is_dir() else []), "overfit"]
    return tables.write(d, labels, out_file(args))


REPRODUCTION = Reproduction(
    name="triples",
    description="Triple extraction (5): scratch, overfit check (+ pretrained if present), dictionary baseline.",
    table="logs/reproduce/triples/results.md",
    plan=plan,
    report=report,
    add_arguments=lambda ap: add_run_dir_arguments(ap, "logs/reproduce/triples"),
    report_only=("report_only",),
    where=out_file,
)
