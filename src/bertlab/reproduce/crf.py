"""The CRF post's layer-1 table (kexue.fm 7196): CRF-1, CRF-2, CRF-3, Softmax, MEMM.

Runs the rows of conf/experiment/crf_layer1/ as one Hydra multirun (a sweep over the row
files, never a cross product) x the seeds, then writes ``crf_layer1.md`` into the sweep folder
(and prints it): the seed summary paired with CRF-1, every run with its transitions, the
learned matrices and the mechanism (:mod:`bertlab.reporting.crf`).

    python -m bertlab.reproduce crf [--rows crf1,crf2,...] [--out DIR] [-- overrides ...]
    python -m bertlab.reproduce crf --report-only DIR     # table of an existing sweep

The post's numbers (BERT-base layer 1, test F1 epoch 1 / best): CRF-1 0.914 / 0.925,
CRF-2 0.929 / 0.930, CRF-3 0.673 / 0.747, Softmax 0.899 / 0.907.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bertlab.reporting import crf as tables
from bertlab.reproduce.base import ROOT, Command, Reproduction, stamp, train
from bertlab.utils.errors import ConfigError

ROWS = ("crf1", "crf2", "crf3", "softmax", "memm")
TABLE = "crf_layer1.md"
SEEDS = "1,2,3"


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated row files of conf/experiment/crf_layer1/")
    ap.add_argument("--seeds", default=SEEDS, help=f"seeds of every row (default {SEEDS}; paired by seed)")
    ap.add_argument(
        "--out",
        default=str(Path("logs") / "crf_layer1" / stamp()),
        help="sweep folder (default: logs/crf_layer1/<time>)",
    )
    ap.add_argument("--report-only", default=None, metavar="DIR", help="only tabulate an existing sweep folder")


def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if not (ROOT / "conf" / "experiment" / "crf_layer1" / f"{r}.yaml").is_file()]
    if unknown or not rows:
        name = (unknown or [""])[0]
        raise ConfigError("--rows", f"no row file conf/experiment/crf_layer1/{name}.yaml (rows: {', '.join(ROWS)})")
    sweep = "experiment=" + ",".join(f"crf_layer1/{r}" for r in rows)
    return [
        train(
            "-m",
            sweep,
            f"seed={args.seeds}",
            "test_every_epoch=true",  # the post's "test F1 after epoch 1" column
            f"hydra.sweep.dir={ROOT / args.out}",
            *overrides,
            keep_going=True,
        )
    ]


def sweep_dir(args: argparse.Namespace) -> Path:
    return Path(args.report_only) if args.report_only else ROOT / args.out


REPRODUCTION = Reproduction(
    name="crf",
    description="CRF post (1): the layer-1 table, CRF x1/x10, CRF at lr 1e-2, softmax, MEMM x 3 seeds (<= 5 min a run).",
    table="logs/crf_layer1/<time>/crf_layer1.md (--out DIR: DIR/crf_layer1.md)",
    plan=plan,
    report=lambda args: tables.write_report(sweep_dir(args), TABLE),
    add_arguments=add_arguments,
    report_only=("report_only",),
    where=lambda args: sweep_dir(args) / TABLE,
)
