"""Post 6's results (``python -m bertlab.reproduce mrc``): the MLM reader next to the UniLM
seq2seq reader on CMRC 2018.

The table: one row per run with the test split's CMRC 2018 EM / F1 and Sogou Acc / F1 / Final
(both official definitions), what it was evaluated on (held-out questions, or the training
questions of an overfit check) and the layout's ceiling on those same questions, then, from the
first held-out run, the trivial baseline and the layout's ceiling (oracle answers of at most
M - 1 tokens) on the same questions; then the questions/s and encoder calls per question of
every decoder of the benchmark (``bench.json`` of scripts/bench_mrc.py, when present) and the
MLM reader's speed-up over each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bertlab.reporting.run_folder import read_run
from bertlab.reporting.tables import num, write_table
from bertlab.utils.errors import DataError

DECODERS = {
    "constrained": "MLM constrained (one pass, the post's)",
    "argmax": "MLM argmax (one pass, no constraint)",
    "autoregressive": "MLM autoregressive (one pass per slot)",
    "seq2seq_joint_nocache": "seq2seq joint, no cache (the post's decoder)",
    "seq2seq_joint": "seq2seq joint, key/value cache",
    "seq2seq_greedy": "seq2seq per passage greedy, key/value cache",
    "seq2seq_beam": "seq2seq per passage beam, key/value cache",
    "seq2seq_greedy_nocache": "seq2seq per passage greedy, no cache",
    "seq2seq_beam_nocache": "seq2seq per passage beam, no cache",
}
#: the post's comparison (its ~6x): the MLM reader against this decoder
POSTS_COMPARISON = "seq2seq_joint_nocache"


def _last_step(m: dict[str, Any]) -> Any:
    clock = m.get("validation_clock") or []
    return clock[-1]["step"] if clock else "-"


def table(runs: list[tuple[str, dict[str, Any]]], speed: dict[str, Any] | None = None) -> str:
    head = (
        "| run | evaluated on | CMRC EM | CMRC F1 | Acc | F1 | Final | no-answer rate "
        "| ceiling Acc / F1 on the same questions | steps (last validation) | train wall s |"
    )
    lines = [head, "|" + "---|" * 11]
    bounds = None
    for label, m in runs:
        t = m.get("test", {})
        lines.append(
            f"| {label} | {t.get('evaluated_on', '-')} ({t.get('n_questions', '-')} questions) "
            f"| {num(t.get('cmrc_em'))} | {num(t.get('cmrc_f1'))} | {num(t.get('acc'))} "
            f"| {num(t.get('f1'))} | {num(t.get('final'))} | {num(t.get('no_answer_rate'))} "
            f"| {num(t.get('oracle_acc'))} / {num(t.get('oracle_f1'))} "
            f"| {_last_step(m)} | {m.get('wall_seconds', 0):.0f} |"
        )
        if bounds is None and "baseline_final" in t and t.get("evaluated_on") != "training questions (overfit check)":
            bounds = t
    if bounds is not None:
        where = f"{bounds.get('evaluated_on', '-')} ({bounds.get('n_questions', '-')} questions)"
        for name, key in (
            (
                "trivial baseline (passage n-gram of the training split's most frequent answer length, most overlap with the question)",
                "baseline",
            ),
            ("ceiling of the layout (answers of <= M - 1 tokens inside one window)", "oracle"),
        ):
            lines.append(
                f"| {name} | {where} | {num(bounds.get(f'{key}_cmrc_em'))} | {num(bounds.get(f'{key}_cmrc_f1'))} "
                f"| {num(bounds[f'{key}_acc'])} | {num(bounds[f'{key}_f1'])} "
                f"| {num(bounds[f'{key}_final'])} | - | - | - | - |"
            )
    text = "\n".join(lines) + "\n"
    if speed:
        rows = [
            "",
            f"Decoding speed ({speed.get('questions', '?')} test questions, {speed.get('passages', '?')} "
            f"passages, {speed.get('threads', '?')} threads, scripts/bench_mrc.py):",
            "",
            "| decoding | questions/s | encoder calls per question (a call runs one batch of passages) | Acc | Final |",
            "|---|---|---|---|---|",
        ]
        for name, label in DECODERS.items():
            if name in speed:
                d = speed[name]
                label += f" (beam {d['beam_size']})" if "beam_size" in d else ""
                rows.append(
                    f"| {label} | {d['questions_per_s']:.2f} | {num(d.get('encoder_calls_per_question'), 1)} "
                    f"| {num(d.get('acc'))} | {num(d.get('final'))} |"
                )
        if "speedup_constrained_vs_autoregressive" in speed:
            rows.append(
                "\nMLM constrained (one pass) vs MLM autoregressive: "
                f"{speed['speedup_constrained_vs_autoregressive']:.1f}x"
            )
        for name, label in DECODERS.items():
            key = f"speedup_mlm_vs_{name}"
            if key in speed:
                post = " (the post's comparison: ~6x)" if name == POSTS_COMPARISON else ""
                rows.append(f"\nMLM constrained vs {label}{post}: {speed[key]:.1f}x")
        text += "\n".join(rows) + "\n"
    return text


def load_speed(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(path, None, f"cannot read the bench_mrc result: {err}") from err


def write(run_dir: Path, runs: dict[str, str], required: tuple[str, ...], out: Path) -> int:
    """The table of the run folders ``runs`` (folder -> row label, in table order) under
    ``run_dir``: those of ``required`` always (a missing one is a :class:`DataError`), the others
    when present, and ``run_dir/bench.json`` when present; into ``out``, and printed."""
    rows = [
        (label, read_run(run_dir / key).finished_metrics())
        for key, label in runs.items()
        if key in required or (run_dir / key).is_dir()
    ]
    speed = load_speed(str(run_dir / "bench.json")) if (run_dir / "bench.json").exists() else None
    text = table(rows, speed)
    write_table(out, text)
    sys.stdout.write(text)
    return 0
