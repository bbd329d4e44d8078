"""Markdown results table of triple-extraction runs (``make reproduce-triples``).

    python -m bertlab.reporting.triples_table LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--out FILE]

Each RUN_DIR is a ``bertlab.train`` run folder (its ``metrics.json``). One row per run with
the test split's P/R/F1 and what it was evaluated on, one row for the dictionary-match
baseline on the same records (from the first run that has it), the gold triples that could
not be located, decoding speed and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from bertlab.utils.errors import DataError


def load_metrics(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise DataError(path, None, "no metrics.json (did the run finish?)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _f(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "-"


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
            f"| {label} | {t.get('evaluated_on', '-')} ({t.get('n_texts', '-')} records) | {_f(t.get('precision'))} "
            f"| {_f(t.get('recall'))} | {_f(t.get('f1'))} | {t.get('n_gold', '-')} "
            f"| {t.get('n_gold_not_found', '-')} / {t.get('n_gold_beyond_max_len', '-')} "
            f"| {t.get('texts_per_s', 0):.1f} | {m.get('wall_seconds', 0):.0f} |"
        )
        if baseline is None and "baseline_f1" in t:
            baseline = (t, m)
    if baseline is not None:
        t, _ = baseline
        lines.append(
            f"| dictionary baseline (train triples whose s and o occur in the text) | {t.get('evaluated_on', '-')} "
            f"({t.get('n_texts', '-')} records) | {_f(t['baseline_precision'])} | {_f(t['baseline_recall'])} "
            f"| {_f(t['baseline_f1'])} | {t.get('n_gold', '-')} | - | - | - |"
        )
    return "\n".join(lines) + "\n"


def cli(
    argv: list[str] | None,
    doc: str,
    table_fn: Callable[[list[tuple[str, dict[str, Any]]]], str],
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None,
    bind: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
) -> int:
    """The shared command line of the run-table writers: ``LABEL=RUN_DIR ... [--out FILE]``;
    ``extra_args`` adds options and ``bind`` turns them into keyword arguments of ``table_fn``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    ap.add_argument("--out", help="write the table here (default: stdout)")
    if extra_args:
        extra_args(ap)
    args = ap.parse_args(argv)
    runs = []
    try:
        for item in args.runs:
            label, eq, path = item.partition("=")
            if not eq:
                label, path = os.path.basename(os.path.normpath(item)), item
            runs.append((label, load_metrics(path)))
        text = table_fn(runs, **(bind(args) if bind else {}))
    except DataError as err:
        print(f"bertlab: error: {err}", file=sys.stderr)
        return 2
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, table)


if __name__ == "__main__":
    raise SystemExit(main())
