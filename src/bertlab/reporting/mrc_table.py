"""Markdown results table of MLM reading-comprehension runs (``make reproduce-mrc``).

    python -m bertlab.reporting.mrc_table LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--speed BENCH.json] [--out FILE]

Each RUN_DIR is a ``bertlab.train`` run folder (its ``metrics.json``). One row per run with the
test split's Acc / F1 / Final (Sogou definitions), what it was evaluated on (held-out
questions, or the training questions of an overfit check) and the layout's ceiling on those
same questions, then, from the first held-out run,
the trivial baseline (the passage n-gram of answer length with the largest character overlap
with the question) and the layout's ceiling (oracle answers of at most M - 1 tokens) on the
same questions. ``--speed`` adds the questions/s of ``scripts/bench_mrc.py --out``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bertlab.reporting.triples_table import _f, cli
from bertlab.utils.errors import DataError


def _last_step(m: dict[str, Any]) -> Any:
    clock = m.get("validation_clock") or []
    return clock[-1]["step"] if clock else "-"


def table(runs: list[tuple[str, dict[str, Any]]], speed: dict[str, Any] | None = None) -> str:
    head = (
        "| run | evaluated on | Acc | F1 | Final | no-answer rate | ceiling Acc / F1 on the same questions "
        "| steps (last validation) | train wall s |"
    )
    lines = [head, "|" + "---|" * 9]
    bounds = None
    for label, m in runs:
        t = m.get("test", {})
        lines.append(
            f"| {label} | {t.get('evaluated_on', '-')} ({t.get('n_questions', '-')} questions) | {_f(t.get('acc'))} "
            f"| {_f(t.get('f1'))} | {_f(t.get('final'))} | {_f(t.get('no_answer_rate'))} "
            f"| {_f(t.get('oracle_acc'))} / {_f(t.get('oracle_f1'))} "
            f"| {_last_step(m)} | {m.get('wall_seconds', 0):.0f} |"
        )
        if bounds is None and "baseline_final" in t and t.get("evaluated_on") != "training questions (overfit check)":
            bounds = t
    if bounds is not None:
        where = f"{bounds.get('evaluated_on', '-')} ({bounds.get('n_questions', '-')} questions)"
        for name, key in (
            ("trivial baseline (passage n-gram with the largest overlap with the question)", "baseline"),
            ("ceiling of the layout (answers of <= M - 1 tokens inside one window)", "oracle"),
        ):
            lines.append(
                f"| {name} | {where} | {_f(bounds[f'{key}_acc'])} | {_f(bounds[f'{key}_f1'])} "
                f"| {_f(bounds[f'{key}_final'])} | - | - | - | - |"
            )
    text = "\n".join(lines) + "\n"
    if speed:
        rows = [
            "",
            f"Decoding speed ({speed.get('questions', '?')} test questions, {speed.get('passages', '?')} "
            f"passages, {speed.get('threads', '?')} threads, scripts/bench_mrc.py):",
            "",
            "| decoding | questions/s | Final |",
            "|---|---|---|",
        ]
        for name in ("constrained", "argmax", "autoregressive"):
            if name in speed:
                rows.append(f"| {name} | {speed[name]['questions_per_s']:.2f} | {_f(speed[name].get('final'))} |")
        if "speedup_constrained_vs_autoregressive" in speed:
            rows.append(
                f"\nconstrained (one pass) vs autoregressive (one pass per slot): "
                f"{speed['speedup_constrained_vs_autoregressive']:.1f}x"
            )
        text += "\n".join(rows) + "\n"
    return text


def _speed_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--speed", help="JSON written by scripts/bench_mrc.py --out")


def _bind(args: argparse.Namespace) -> dict[str, Any]:
    if not args.speed:
        return {}
    try:
        with open(args.speed, encoding="utf-8") as f:
            return {"speed": json.load(f)}
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(args.speed, None, f"cannot read the bench_mrc result: {err}") from err


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, table, _speed_arg, _bind)


if __name__ == "__main__":
    raise SystemExit(main())
