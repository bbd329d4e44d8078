"""Reading comprehension (post 6) on CMRC 2018, the MLM reader next to the UniLM seq2seq
reader (the post's comparison): the MLM reader from scratch, the memorisation check of each
reader (200 training questions), each reader held out with the small pretrained BERT (when
data/pretrained/bert_small exists), and the decoding-speed benchmark of both overfit models on
the same questions (scripts/bench_mrc.py --seq2seq-ckpt), one run each into ``--dir`` (default
logs/reproduce/mrc), then ``results.md`` there.

    python -m bertlab.reproduce mrc [--dir DIR] [--out FILE] [--report-only] [-- overrides ...]

The table (:mod:`bertlab.reporting.mrc`): one row per run with the test split's CMRC 2018 and
Sogou scores, the trivial baseline and the layout's ceiling on the same questions, then the
decoding speed of the benchmark (``<dir>/bench.json``, when present).
"""

from __future__ import annotations

import argparse

from bertlab.reporting import mrc as tables
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

PRETRAINED = ROOT / "data" / "pretrained" / "bert_small"
#: run folder -> row label, in table order
RUNS = {
    "scratch": "MLM, scratch",
    "pretrained": "MLM, pretrained",
    "overfit": "MLM, memorisation check",
    "seq2seq_pretrained": "seq2seq, pretrained",
    "seq2seq_overfit": "seq2seq, memorisation check",
}


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
    # the memorisation check always; the held-out arms (scratch, pretrained) and the seq2seq runs when present
    return tables.write(run_dir(args), RUNS, ("overfit",), out_file(args))


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
