"""The CRF post's mechanism (post 1), measured: does the transition gradient fall as the
emissions fit, and how much do the transitions add, at CRF lr x1 / x10 / x100 / x1000?

Two settings, one multirun over the multiplier (and the seeds) each:

* ``--setting layer1``: the layer-1 table's CRF-1 row (a fresh 1-layer encoder, main lr 1e-3,
  3 epochs of the 1 M-character subset), validation 4x per epoch;
* ``--setting claim``: the lr claim (the small pretrained BERT, main lr 1e-5), ``--epochs``
  (default 2: at 1e-5 the emissions need more than the claim table's 1 epoch to fit),
  validation 4x per epoch.

Every run logs ``mechanism/*`` and writes ``mechanism/mechanism.csv`` (callback
:mod:`bertlab.callbacks.crf_mechanism`, on by default); the table (``crf_mechanism.md`` in the
sweep folder) has the layer-1 columns, the seeds paired with CRF x1, and the mechanism section
with its two PNGs (:func:`bertlab.reporting.crf.mechanism_report`).

    python -m bertlab.reproduce crf_mechanism [--setting layer1|claim] [--multipliers 1,10,100,1000]
        [--seeds 1] [--epochs N] [--out DIR] [-- overrides ...]
    python -m bertlab.reproduce crf_mechanism --report-only DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bertlab.reporting.crf import write_report
from bertlab.reproduce.base import ROOT, Command, Reproduction, stamp, train

TABLE = "crf_mechanism.md"
SETTINGS = {
    "layer1": ["experiment=crf_layer1/crf1", "trainer.val_check_interval=0.25"],
    "claim": ["experiment=crf_lr_claim", "trainer.val_check_interval=0.25"],
}
EPOCHS = {"layer1": 3, "claim": 2}


def _ints(text: str) -> str:
    if not text or not all(x.strip().isdigit() for x in text.split(",")):
        raise argparse.ArgumentTypeError("takes a comma-separated list of integers, e.g. 1,10,100")
    return text


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="layer1", help="which encoder and lr (see above)")
    ap.add_argument("--multipliers", default="1,10,100,1000", type=_ints, help="CRF lr multipliers")
    ap.add_argument("--seeds", default="1", type=_ints, help="seeds of every multiplier (default 1)")
    ap.add_argument("--epochs", default=None, type=int, help="training epochs (default: layer1 3, claim 2)")
    ap.add_argument(
        "--out", default=None, help="sweep folder (default: logs/crf_mechanism/<setting>_<time>)", metavar="DIR"
    )
    ap.add_argument("--report-only", default=None, metavar="DIR", help="only tabulate an existing sweep folder")


def _out(args: argparse.Namespace) -> Path:
    if args.report_only:
        return Path(args.report_only)
    return ROOT / (args.out or str(Path("logs") / "crf_mechanism" / f"{args.setting}_{stamp()}"))


def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
    epochs = args.epochs or EPOCHS[args.setting]
    return [
        train(
            "-m",
            *SETTINGS[args.setting],
            f"++optimizer.lr_multipliers.crf={args.multipliers}",
            f"seed={args.seeds}",
            f"trainer.max_epochs={epochs}",
            f"hydra.sweep.dir={_out(args)}",
            *overrides,
            keep_going=True,
        )
    ]


def report(args: argparse.Namespace) -> int:
    return write_report(
        _out(args), TABLE, baseline="CRF x1", title="CRF mechanism: lr multiplier sweep", label_by_multiplier=True
    )


REPRODUCTION = Reproduction(
    name="crf_mechanism",
    description="CRF post (1), mechanism: transition gradient and what the transitions add, CRF x1/x10/x100/x1000.",
    table=f"logs/crf_mechanism/<setting>_<time>/{TABLE} (--out DIR: DIR/{TABLE})",
    plan=plan,
    report=report,
    add_arguments=add_arguments,
    report_only=("report_only",),
    where=lambda args: _out(args) / TABLE,
)
