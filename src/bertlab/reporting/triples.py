"""Post 5's results (``python -m bertlab.reproduce triples``): one row per run with the test
split's P/R/F1 and what it was evaluated on, one row for the dictionary-match baseline on the
same records (from the first run that has it), the gold triples that could not be located,
decoding speed and wall time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bertlab.reporting.run_folder import read_run
from bertlab.reporting.tables import num, write_table


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


def write(run_dir: Path, labels: list[str], out: Path) -> int:
    """The table of the run folders ``run_dir/<label>`` (each must have finished) into ``out``,
    and printed."""
    text = table([(label, read_run(run_dir / label).finished_metrics()) for label in labels])
    write_table(out, text)
    sys.stdout.write(text)
    return 0
