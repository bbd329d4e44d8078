"""The CRF post's main claim at its own learning rate: main lr 1e-5 on the small PRETRAINED
encoder, CRF lr multiplier 1 vs 100 vs 1000 (experiment=crf_lr_claim, one multirun over the
multiplier). At x1 the transition matrix cannot leave its init (Adam moves a weight about lr
per step); at x100 / x1000 the 8 impossible BMES moves turn negative.

    python -m bertlab.reproduce crf_claim [--out DIR] [-- overrides ...]
    python -m bertlab.reproduce crf_claim --report-only DIR

The table has the columns and matrices of the layer-1 table (:mod:`bertlab.reporting.crf`),
written to ``<sweep folder>/crf_lr_claim.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bertlab.reporting.crf import write_report
from bertlab.reproduce.base import ROOT, Command, Reproduction, stamp, train
from bertlab.reproduce.crf import SEEDS

MULTIPLIERS = (1, 100, 1000)
TABLE = "crf_lr_claim.md"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--out",
        default=str(Path("logs") / "crf_lr_claim" / stamp()),
        help="sweep folder (default: logs/crf_lr_claim/<time>)",
    )
    ap.add_argument("--report-only", default=None, metavar="DIR", help="only tabulate an existing sweep folder")
    ap.add_argument("--seeds", default=SEEDS, help=f"seeds of every multiplier (default {SEEDS}; paired by seed)")


def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
    sweep = [
        "experiment=crf_lr_claim",
        "optimizer.lr_multipliers.crf=" + ",".join(map(str, MULTIPLIERS)),
        f"seed={args.seeds}",
    ]
    return [train("-m", *sweep, f"hydra.sweep.dir={ROOT / args.out}", *overrides, keep_going=True)]


def report(args: argparse.Namespace) -> int:
    sweep_dir = Path(args.report_only) if args.report_only else ROOT / args.out
    return write_report(sweep_dir, TABLE, baseline="CRF x1", title="CRF lr claim (main lr 1e-5, pretrained small BERT)")


REPRODUCTION = Reproduction(
    name="crf_claim",
    description="CRF post (1), main claim: lr 1e-5 on the pretrained small BERT, CRF lr x1 / x100 / x1000.",
    table=f"logs/crf_lr_claim/<time>/{TABLE} (--out DIR: DIR/{TABLE})",
    plan=plan,
    report=report,
    add_arguments=add_arguments,
    report_only=("report_only",),
    where=lambda args: (Path(args.report_only) if args.report_only else ROOT / args.out) / TABLE,
)
