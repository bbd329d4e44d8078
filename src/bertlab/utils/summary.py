"""The end-of-run summary table (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

ROWS = (
    ("precision", "P"),
    ("recall", "R"),
    ("f1", "F1"),
    ("oov_recall", "OOV recall"),
    ("iv_recall", "IV recall"),
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def print_summary(metrics: dict[str, Any], title: str = "results") -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("validation (last)", justify="right")
    table.add_column("test", justify="right")
    val = metrics.get("val_last", {}) or {}
    test = metrics.get("test", {}) or {}
    for key, label in ROWS:
        if key in val or key in test:
            table.add_row(label, _fmt(val.get(key)), _fmt(test.get(key)))
    if "train_tokens_per_s" in metrics:
        table.add_row("train tokens/s (non-padding)", _fmt(round(metrics["train_tokens_per_s"], 1)), "")
    table.add_row("wall time (s)", _fmt(round(metrics.get("wall_seconds", 0.0), 1)), "")
    Console().print(table)
    return table
