"""Conditional-LayerNorm generation (post 7): the sentiment classifier (reused when
``--cls-dir`` holds a finished run), then cond_gen from scratch, without the condition
(unconditional), with the small pretrained BERT (when data/pretrained/bert_small exists), the
overfit check and its held-out evaluation, and the cached vs uncached generation speed
(scripts/bench_generate.py); one run each into ``--dir`` (default logs/reproduce/generation),
then ``results.md`` there (:mod:`bertlab.reporting.generation`).

    python -m bertlab.reproduce generation [--dir DIR] [--cls-dir DIR] [--cls-args "k=v ..."]
        [--samples 5] [--out FILE] [--report-only] [-- overrides of every training ...]

The overrides after ``--`` reach every training (the classifier's too, before ``--cls-args``,
which win) and the held-out evaluation (those of them that ``bertlab.evaluate`` takes:
``trainer.*``, ``paths.*``, ``logger``, ``hydra.*``; the others are named on stderr).

The run folders under ``--dir``: ``scratch``, ``pretrained``, ``unconditional`` (arms of the
comparison, experiment=cond_gen), ``overfit`` (experiment=cond_gen_overfit), ``overfit_heldout``
(``bertlab.evaluate`` of the overfit model on the held-out split) and ``bench.json``; the
classifier's is ``--cls-dir`` (experiment=sentiment_cls). ``scratch`` is required; the others
are tabulated when present."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from bertlab.reporting import generation as tables
from bertlab.reproduce.base import (
    ROOT,
    Command,
    Deferred,
    Reproduction,
    add_run_dir_arguments,
    best_checkpoint,
    evaluate,
    not_,
    out_file,
    path_exists,
    run_dir,
    train,
)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    add_run_dir_arguments(ap, "logs/reproduce/generation")
    ap.add_argument(
        "--cls-dir",
        default=None,
        help="the sentiment classifier's run folder; a finished one (metrics.json) is reused (default: <dir>/classifier)",
    )
    ap.add_argument("--cls-args", default="", help='overrides of the classifier\'s training, e.g. "threads=1"')
    ap.add_argument("--samples", type=int, default=5, help="samples per label and arm in the report")


def _cls_dir(args: argparse.Namespace) -> str:
    return args.cls_dir or f"{args.dir}/classifier"


def plan(args: argparse.Namespace, overrides: list[str]) -> list[Command]:
    d, cls_dir = args.dir, _cls_dir(args)
    cls = best_checkpoint(cls_dir)
    control = ["model.control_classifier_ckpt=", cls]
    return [
        train(  # the overrides of every training, then the classifier's own (--cls-args win)
            "experiment=sentiment_cls",
            f"hydra.run.dir={cls_dir}",
            *overrides,
            *shlex.split(args.cls_args),
            only_if=not_(path_exists(f"{cls_dir}/metrics.json", "file")),
        ),
        train("experiment=cond_gen", _join(control), f"hydra.run.dir={d}/scratch", *overrides),
        train("experiment=cond_gen_uncond", _join(control), f"hydra.run.dir={d}/unconditional", *overrides),
        train(
            "experiment=cond_gen",
            "encoder=bert_small_pretrained",
            "encoder.keep_layers=2",  # the scratch arm's depth: the first 2 of its 4 layers
            _join(control),
            f"hydra.run.dir={d}/pretrained",
            *overrides,
            only_if=path_exists("data/pretrained/bert_small"),
        ),
        train("experiment=cond_gen_overfit", f"hydra.run.dir={d}/overfit", *overrides),
        evaluate(
            _join(["ckpt_path=", best_checkpoint(f"{d}/overfit")]),
            "+data.overfit_texts=null",
            f"hydra.run.dir={d}/overfit_heldout",
            overrides=overrides,
        ),
        Command(
            [
                "python",
                "scripts/bench_generate.py",
                "--ckpt",
                best_checkpoint(f"{d}/scratch"),
                "--json",
                f"{d}/bench.json",
            ]
        ),
    ]


def _join(parts: list[Any]) -> Any:
    """``key=`` + a deferred value as one argument."""
    prefix, value = parts
    return Deferred(prefix + value.text, lambda: prefix + value.resolve())


def report(args: argparse.Namespace) -> int:
    d, cls_dir = run_dir(args), ROOT / _cls_dir(args)
    runs = [("scratch", str(d / "scratch"))]
    runs += [(lab, str(d / lab)) for lab in ("pretrained", "unconditional") if (d / lab / "metrics.json").is_file()]
    runs += [(lab, str(d / lab)) for lab in ("overfit", "overfit_heldout") if (d / lab).is_dir()]
    if cls_dir.is_dir():
        runs.append(("classifier", str(cls_dir)))
    if (d / "bench.json").exists():
        runs.append(("bench", str(d / "bench.json")))
    return tables.write(runs, args.samples, out_file(args))


REPRODUCTION = Reproduction(
    name="generation",
    description="Conditional-LN generation (7): classifier, scratch, unconditional, overfit (+ pretrained), speed.",
    table="logs/reproduce/generation/results.md",
    plan=plan,
    report=report,
    add_arguments=add_arguments,
    report_only=("report_only",),
    where=out_file,
)
