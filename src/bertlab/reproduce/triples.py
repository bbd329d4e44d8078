"""Triple extraction (post 5): from scratch, the overfit check, and the small pretrained BERT
when data/pretrained/bert_small exists; one run each into ``--dir`` (default
logs/reproduce/triples), then ``results.md`` there.

    python -m bertlab.reproduce triples [--dir DIR] [--out FILE] [--report-only] [-- overrides ...]

The table: one row per run with the test split's P/R/F1 and what it was evaluated on, one row
for the dictionary-match baseline on the same records (from the first run that has it), the
gold triples that could not be located, decoding speed and wall time.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bertlab.reporting.tables import load_metrics, num, write_table
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


def table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    head = (
        "| run | evaluated on | P | R | F1 | gold triples | unlocatable (not found / beyond maxlen) "
        "| decoding texts/s | train wall s |"
    )
    lines = [head, "|" + "---|" * 9]
    baseline = None
    for label, m in runs:
        t = m.get("test", {})
        lines.append(
            f"| {label} | {t.get('evaluated_on', '-')} ({t.get('n_texts', '-')} records) | {num(t.get('precision'))} "
            f"| {num(t.get('recall'))} | {num(t.get('f1'))} | {t.get('n_gold', '-')} "
            f"| {t.get('n_gold_not_found', '-')} / {t.get('n_gold_beyond_max_len', '-')} "
            f"| {t.get('texts_per_s', 0):.1f} | {m.get('wall_seconds', 0):.0f} |"
        )
        if baseline is None and "baseline_f1" in t:
            baseline = (t, m)
    if baseline is not None:
        t, _ = baseline
        lines.append(
            f"| dictionary baseline (train triples whose s and o occur in the text) | {t.get('evaluated_on', '-')} "
            f"({t.get('n_texts', '-')} records) | {num(t['baseline_precision'])} | {num(t['baseline_recall'])} "
            f"| {num(t['baseline_f1'])} | {t.get('n_gold', '-')} | - | - | - |"
        )
    return "\n".join(lines) + "\n"


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
    text = table([(label, load_metrics(d / label)) for label in labels])
    write_table(out_file(args), text)
    sys.stdout.write(text)
    return 0


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
