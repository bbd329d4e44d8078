"""Reading comprehension (post 6) on CMRC 2018, the MLM reader next to the UniLM seq2seq
reader (the post's comparison): the MLM reader from scratch, the memorisation check of each
reader (200 training questions), each reader held out with the small pretrained BERT (when
data/pretrained/bert_small exists), and the decoding-speed benchmark of both overfit models on
the same questions (scripts/bench_mrc.py --seq2seq-ckpt), one run each into ``--dir`` (default
logs/reproduce/mrc), then ``results.md`` there.

    python -m bertlab.reproduce mrc [--dir DIR] [--out FILE] [--report-only] [-- overrides ...]

The table: one row per run with the test split's CMRC 2018 EM / F1 and Sogou Acc / F1 / Final
(both official definitions), what it was evaluated on (held-out questions, or the training questions of an overfit check) and
the layout's ceiling on those same questions, then, from the first held-out run, the trivial
baseline and the layout's ceiling (oracle answers of at most M - 1 tokens) on the same
questions; then the questions/s and encoder calls per question of every decoder of the
benchmark (``<dir>/bench.json``, when present) and the MLM reader's speed-up over each.
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
#: run folder -> row label, in table order
RUNS = {
    "scratch": "MLM, scratch",
    "pretrained": "MLM, pretrained",
    "overfit": "MLM, memorisation check",
    "seq2seq_pretrained": "seq2seq, pretrained",
    "seq2seq_overfit": "seq2seq, memorisation check",
}
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
        train("experiment=mrc_seq2seq_overfit", f"hydra.run.dir={d}/seq2seq_overfit", *overrides),
        train(
            "experiment=mrc_seq2seq",
            "encoder=bert_small_pretrained",
            "optimizer.lr=1e-4",
            f"hydra.run.dir={d}/seq2seq_pretrained",
            *overrides,
            only_if=path_exists(PRETRAINED.relative_to(ROOT)),
        ),
        Command(
            [
                "python",
                "scripts/bench_mrc.py",
                "--ckpt",
                best_checkpoint(f"{d}/overfit"),
                "--seq2seq-ckpt",
                best_checkpoint(f"{d}/seq2seq_overfit"),
                "--questions",
                "100",
                "--out",
                f"{d}/bench.json",
            ]
        ),
    ]


def report(args: argparse.Namespace) -> int:
    d = run_dir(args)
    required = ("overfit",)  # the held-out arms (scratch, pretrained) and the seq2seq runs when present
    runs = [(label, load_metrics(d / key)) for key, label in RUNS.items() if key in required or (d / key).is_dir()]
    speed = load_speed(str(d / "bench.json")) if (d / "bench.json").exists() else None
    text = table(runs, speed)
    write_table(out_file(args), text)
    sys.stdout.write(text)
    return 0


REPRODUCTION = Reproduction(
    name="mrc",
    description="Reading comprehension (6), CMRC 2018: MLM vs seq2seq reader, memorisation, held out, speed.",
    table="logs/reproduce/mrc/results.md",
    plan=plan,
    report=report,
    add_arguments=lambda ap: add_run_dir_arguments(ap, "logs/reproduce/mrc"),
    report_only=("report_only",),
    where=out_file,
)
