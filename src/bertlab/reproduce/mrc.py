"""MLM reading comprehension (post 6) on CMRC 2018: from scratch, the overfit check (+ the
small pretrained BERT when data/pretrained/bert_small exists), the decoding-speed benchmark
of the overfit model (scripts/bench_mrc.py), one run each into ``--dir`` (default
logs/reproduce/mrc), then ``results.md`` there.

    python -m bertlab.reproduce mrc [--dir DIR] [--out FILE] [--report-only] [-- overrides ...]

The table: one row per run with the test split's Acc / F1 / Final (Sogou definitions), what
it was evaluated on (held-out questions, or the training questions of an overfit check) and
the layout's ceiling on those same questions, then, from the first held-out run, the trivial
baseline and the layout's ceiling (oracle answers of at most M - 1 tokens) on the same
questions; then the questions/s of the benchmark (``<dir>/bench.json``, when present).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bertlab.reporting.tables import load_metrics, num, write_table
from bertlab.reproduce.base import (
    ROOT,
    Command,
    Reproduction,
    add_run_dir_arguments,
    best_checkpoint,
    out_file,
    path_exists,
    run_dir,
    train,
)
from bertlab.utils.errors import DataError

PRETRAINED = ROOT / "data" / "pretrained" / "bert_small"


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
            f"| {label} | {t.get('evaluated_on', '-')} ({t.get('n_questions', '-')} questions) | {num(t.get('acc'))} "
            f"| {num(t.get('f1'))} | {num(t.get('final'))} | {num(t.get('no_answer_rate'))} "
            f"| {num(t.get('oracle_acc'))} / {num(t.get('oracle_f1'))} "
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
                f"| {name} | {where} | {num(bounds[f'{key}_acc'])} | {num(bounds[f'{key}_f1'])} "
                f"| {num(bounds[f'{key}_final'])} | - | - | - | - |"
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
                rows.append(f"| {name} | {speed[name]['questions_per_s']:.2f} | {num(speed[name].get('final'))} |")
        if "speedup_constrained_vs_autoregressive" in speed:
            rows.append(
                f"\nconstrained (one pass) vs autoregressive (one pass per slot): "
                f"{speed['speedup_constrained_vs_autoregressive']:.1f}x"
            )
        text += "\n".join(rows) + "\n"
    return text


def load_speed(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(path, None, f"cannot read the bench_mrc result: {err}") from err


def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
    d = args.dir
    return [
        train("experiment=mrc_mlm", f"hydra.run.dir={d}/scratch", *overrides),
        train("experiment=mrc_mlm_overfit", f"hydra.run.dir={d}/overfit", *overrides),
        train(
            "experiment=mrc_mlm",
            "encoder=bert_small_pretrained",
            "optimizer.lr=1e-4",
            f"hydra.run.dir={d}/pretrained",
            *overrides,
            only_if=path_exists(PRETRAINED.relative_to(ROOT)),
        ),
        Command(
            [
                "python",
                "scripts/bench_mrc.py",
                "--ckpt",
                best_checkpoint(f"{d}/overfit"),
                "--questions",
                "100",
                "--out",
                f"{d}/bench.json",
            ]
        ),
    ]


def report(args: argparse.Namespace) -> int:
    d = run_dir(args)
    labels = ["scratch", *(["pretrained"] if (d / "pretrained").is_dir() else []), "overfit"]
    runs = [(label, load_metrics(d / label)) for label in labels]
    speed = load_speed(str(d / "bench.json")) if (d / "bench.json").exists() else None
    text = table(runs, speed)
    write_table(out_file(args), text)
    sys.stdout.write(text)
    return 0


REPRODUCTION = Reproduction(
    name="mrc",
    description="MLM reading comprehension (6), CMRC 2018: scratch, overfit (+ pretrained), decoding speed.",
    table="logs/reproduce/mrc/results.md",
    plan=plan,
    report=report,
    add_arguments=lambda ap: add_run_dir_arguments(ap, "logs/reproduce/mrc"),
    report_only=("report_only",),
    where=out_file,
)
