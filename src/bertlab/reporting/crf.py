"""The CRF post's tables (kexue.fm 7196): the layer-1 table, the lr claim and the mechanism sweep
(``python -m bertlab.reproduce crf | crf_claim | crf_mechanism``), one renderer for the three.

:func:`write_report` tabulates a sweep folder into ``<sweep folder>/<table>`` and prints it:

* the seed summary (:mod:`bertlab.reporting.seed_sweep`): per row main lr, head lr, validation F1
  after epoch 1 and best (epoch), the test F1 after epoch 1 and of the best-validation
  checkpoint, seconds of training; mean ± std over seeds, every row paired with the baseline
  row's run of the same seed;
* every run; for the rows with transitions: max |transitions - init| next to head lr x
  optimizer steps (under Adam a weight moves at most about lr per step), and how many of the 8
  moves a BMES tagging can never make score below zero;
* the learned matrices of the first three rows with transitions side by side;
* the mechanism (:func:`mechanism_report`) with its two PNGs next to the table.

A run's row is named by its experiment (:func:`row_label`).
"""

from __future__ import annotations

import csv
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from bertlab.reporting import plots
from bertlab.reporting import seed_sweep as ss
from bertlab.reporting.multirun import load_multirun
from bertlab.reporting.run_folder import Run
from bertlab.reporting.tables import count_negative, impossible_moves, learned_transitions, num, write_table
from bertlab.utils.errors import DataError

#: the post's numbers (BERT-base layer 1, test F1 after epoch 1 / best), by row
POST = {"CRF-1": (0.914, 0.925), "CRF-2": (0.929, 0.930), "CRF-3": (0.673, 0.747), "Softmax": (0.899, 0.907)}
#: the seed summary: every row paired with the baseline row's run of the same seed
SUMMARY = [
    ss.Column("val F1 epoch 1", "val_epoch1", 1.0, ".4f"),
    ss.Column("val F1 best", "val_best", 1.0, ".4f"),
    ss.Column("test F1 after epoch 1", "test_epoch1", 1.0, ".4f"),
    ss.Column("test F1 (best val ckpt)", "test_f1", 1.0, ".4f"),
    ss.Column("Δ test F1 vs {base}, same seed", "delta_test_f1", 1.0, "+.4f"),
    ss.Column("seconds", "seconds", 1.0, ".0f"),
]


def row_label(run: Run) -> str | None:
    """The name of the run's row as its experiment declares it (conf/experiment/crf_layer1/*.yaml,
    crf_lr_claim.yaml), None when it declares none: the one place that reads it."""
    return run.cfg("row")


def job_row(job: Run) -> dict[str, Any]:
    """What the CRF tables show of one run."""
    head = job.require("head.type")
    lr = float(job.require("optimizer.lr"))
    mult = float((job.cfg("optimizer.lr_multipliers") or {}).get(head, 1.0))
    vals = [(int(r["epoch"]), r["val/f1"]) for r in job.history if "val/f1" in r and "epoch" in r]
    steps = max((int(r["step"]) for r in job.history if "step" in r), default=0)
    epoch1 = next((v for e, v in reversed(vals) if e == 0), None)  # the last validation of epoch 1
    best = max(vals, key=lambda ev: ev[1]) if vals else None
    m = job.metrics or {}
    test_epochs = [
        (int(r["test_epoch/epoch"]), r["test_epoch/f1"])
        for r in job.history
        if r.get("test_epoch/f1") is not None and r.get("test_epoch/epoch") is not None
    ]
    name = str(row_label(job) or job.name)
    if "${" in name:  # an interpolated label (config.yaml keeps interpolations unresolved)
        name = f"{head.upper()} x{mult:g}"
    row = {
        "row": name,
        "head": head,
        "lr": lr,
        "head_lr": lr * mult if head != "softmax" else None,
        "val_epoch1": epoch1,
        "val_best": best[1] if best else None,
        "best_epoch": best[0] + 1 if best else None,
        "test_f1": (m.get("test") or {}).get("f1"),
        # test_every_epoch=true logs the epoch number counted from 1
        "test_epoch1": next((v for e, v in test_epochs if e == 1), None),
        "seed": job.cfg("seed"),
        "seconds": m.get("wall_seconds"),
        "steps": steps,
        "ok": job.ok,
        "path": job.path,
    }
    trans = learned_transitions(job.path)
    if trans is not None:
        row["matrix_of"] = trans.of
        row["names"], row["init"], row["last"] = trans.names, trans.init, trans.last
        row["moved"] = trans.moved
        if trans.names == ["s", "b", "m", "e"]:  # BMES: how many of the 8 impossible moves score < 0
            moves = impossible_moves(trans.names)
            row["impossible_neg"] = (
                f"{count_negative(trans.names, trans.last, moves)} {trans.of} "
                f"(init {count_negative(trans.names, trans.init, moves)})"
            )
    return row


def render(rows: list[dict], sweep_dir: Path) -> str:
    out = [
        f"Sweep folder: `{sweep_dir}`",
        "",
        "Per run:",
        "",
        "| run | seed | head | main lr | head lr | val F1 epoch 1 | val F1 best (epoch) | test F1 (best val ckpt) "
        "| post test F1 epoch 1 / best | max abs(trans - init) | head lr x steps | impossible moves < 0 | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["ok"]:
            out.append(f"| {r['row']} | {r.get('seed')} | {r['head']} | {r['lr']:g} | - | FAILED | | | | | | | |")
            continue
        post = POST.get(r["row"])
        post_s = "-" if post is None else f"{post[0]:.3f} / {post[1]:.3f}"
        head_lr = "-" if r["head_lr"] is None else f"{r['head_lr']:g}"
        budget = "-" if r["head_lr"] is None else f"{r['head_lr'] * r['steps']:.3g}"
        out.append(
            f"| {r['row']} | {r.get('seed')} | {r['head']} | {r['lr']:g} | {head_lr} | {num(r['val_epoch1'])} "
            f"| {num(r['val_best'])} ({r['best_epoch']}) | {num(r['test_f1'])} | {post_s} "
            f"| {num(r.get('moved'), 3)} | {budget} | {r.get('impossible_neg', '-')} | {num(r['seconds'], 0)} |"
        )
    seen: set[str] = set()  # the matrices of the first seed of each row
    mats = []
    for r in rows:
        if "last" in r and r["row"] not in seen:
            seen.add(r["row"])
            mats.append(r)
    mats = mats[:3]
    if len(mats) >= 2:
        names = mats[0]["names"]
        out += [
            "",
            "Learned transitions (rows from, columns to; best = the checkpoint whose test F1 is reported, "
            "last = the last saved matrix of a run older than transitions/best.csv): "
            + " | ".join(f"{r['row']} ({r['matrix_of']})" for r in mats),
            "",
            "| from | " + " | | ".join(" | ".join(f"{r['row']} to {n}" for n in names) for r in mats) + " |",
            "|---|" + "---|" * (len(names) * len(mats) + len(mats) - 1),
        ]
        for i, n in enumerate(names):
            out.append(f"| {n} | " + " | | ".join(" | ".join(f"{x:.3f}" for x in r["last"][i]) for r in mats) + " |")
    return "\n".join(out) + "\n"


def seed_summary(rows: list[dict], baseline: str, title: str, sweep_dir: Path) -> str:
    """Rows x seeds through the shared seed-sweep table: mean ± std per row, every row's test F1
    paired with the ``baseline`` row's run of the same seed (SE and verdict)."""
    runs = [
        {**r, "arm": r["row"], "job": r["path"].name, "failed": None if r["ok"] else "no metrics.json"} for r in rows
    ]
    ss.add_paired_deltas(runs, baseline, "test_f1")
    cols = [ss.Column(c.header.format(base=baseline), c.key, c.scale, c.fmt) for c in SUMMARY]
    order = list(dict.fromkeys(r["row"] for r in rows))
    return ss.render(runs, cols, title=title, source=str(sweep_dir), arms=order)


def read_mechanism(run_dir: Path) -> list[dict[str, float | None]]:
    """The rows of a run's ``mechanism/mechanism.csv`` (one per validation; empty cells None)."""
    path = run_dir / "mechanism" / "mechanism.csv"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in csv.DictReader(f)]


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.mean(vals) if vals else None


def mechanism_report(rows: list[dict], out_dir: Path) -> str:
    """Post 1's mechanism across the rows of a sweep (each row's seeds averaged per validation):
    the transition / emission gradient norms (means since the previous validation) and what the
    transitions add (CRF-decoded F1 minus emissions-only F1), first vs last validation, with the
    per-seed change of log10(transition gradient norm) paired over seeds (does it fall beyond
    noise?); and two PNGs next to the table, one line per row: ``mechanism_transition_grad.png``
    and ``mechanism_transitions_add.png``. Empty when no run has a mechanism CSV."""
    by_row: dict[str, list[list[dict]]] = {}
    for r in rows:
        mech = read_mechanism(r["path"]) if r.get("ok") else []
        if mech and any(m.get("transition_grad_norm") is not None for m in mech):
            by_row.setdefault(r["row"], []).append(mech)
    if not by_row:
        return ""
    cols = ss.Column("Δ log10 transition grad norm, last - first validation", "dlog", 1.0, "+.3f")
    out = [
        "",
        "Mechanism (post 1): gradient norms are means over the optimizer steps since the previous validation; "
        "'transitions add' = CRF-decoded val F1 - emissions-only (argmax) val F1. Values are means over the "
        "row's seeds; the Δ column pairs each seed's own first and last validation (SE, verdict). Emission "
        "top / margin: the validation tokens' mean top emission score / mean top minus second score "
        "(post 1: 6-8 / at least 3 once the emissions fit; - for runs older than it).",
        "",
        "| row | seeds | validations (steps) | transition grad norm, first -> last | emission grad norm, first -> last "
        "| transitions add (F1), first -> last | " + cols.header + " | emission top / margin, first -> last |",
        "|---|---|---|---|---|---|---|---|",
    ]
    steps_of: dict[str, list[int]] = {}
    trans_of: dict[str, list[float]] = {}
    add_of: dict[str, list[float]] = {}
    for name, runs in by_row.items():
        n = min(len(m) for m in runs)
        steps_of[name] = [int(runs[0][i]["step"] or 0) for i in range(n)]
        series = {
            k: [_mean([m[i].get(k) for m in runs]) for i in range(n)]
            for k in (
                "transition_grad_norm",
                "emission_grad_norm",
                "transitions_add",
                "emission_top",
                "emission_margin",
            )
        }
        trans_of[name] = [float("nan") if v is None else v for v in series["transition_grad_norm"]]
        add_of[name] = [float("nan") if v is None else v for v in series["transitions_add"]]
        dlogs = [
            math.log10(m[n - 1]["transition_grad_norm"]) - math.log10(m[0]["transition_grad_norm"])
            for m in runs
            if (m[0].get("transition_grad_norm") or 0) > 0 and (m[n - 1].get("transition_grad_norm") or 0) > 0
        ]

        dcell = ss.mean_std(dlogs, 1.0, "+.3f")
        if dcell != "-":
            dcell += f" ({ss.paired_verdict(dlogs, 1.0, '+.3f')})"
        out.append(
            f"| {name} | {len(runs)} | {n} ({', '.join(map(str, steps_of[name]))}) | {_first_last(series['transition_grad_norm'], _sci)} "
            f"| {_first_last(series['emission_grad_norm'], _sci)} | {_first_last(series['transitions_add'], num)} | {dcell} "
            f"| {_margin_cell(series['emission_top'], series['emission_margin'])} |"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, data, title, ylabel, logy in (
        (
            "mechanism_transition_grad.png",
            trans_of,
            "transition gradient norm per row",
            "L2 (mean since last val)",
            True,
        ),
        (
            "mechanism_transitions_add.png",
            add_of,
            "what the transitions add per row",
            "CRF F1 - emissions-only F1",
            False,
        ),
    ):
        plots.close(plots.curves_png(steps_of, data, str(out_dir / fname), title=title, ylabel=ylabel, logy=logy))
    out += ["", "Plots: `mechanism_transition_grad.png`, `mechanism_transitions_add.png` (next to this table)."]
    return "\n".join(out) + "\n"


def _first_last(values: list[float | None], fmt) -> str:
    return f"{fmt(values[0])} -> {fmt(values[-1])}"


def _margin_cell(top: list[float | None], margin: list[float | None]) -> str:
    """ "top / margin -> top / margin" (first and last validation), "-" when not measured."""
    if top[0] is None or top[-1] is None:
        return "-"
    return f"{top[0]:.2f} / {num(margin[0], 2)} -> {top[-1]:.2f} / {num(margin[-1], 2)}"


def _sci(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def write_report(
    sweep_dir: Path,
    table: str,
    baseline: str = "CRF-1",
    title: str = "CRF layer-1 table",
    label_by_multiplier: bool = False,
) -> int:
    """Tabulate the sweep folder into ``<sweep_dir>/<table>`` and print it: the seed summary
    (paired with ``baseline``), every run with its transitions, then the mechanism
    (:func:`mechanism_report`, PNGs into the sweep folder). ``label_by_multiplier``: name every
    row "<HEAD> x<multiplier>" (a sweep of one row file over the multiplier)."""
    if not (sweep_dir / "multirun.yaml").is_file():
        raise DataError(str(sweep_dir / "multirun.yaml"), None, "no such file: the sweep did not start")
    _, jobs = load_multirun(sweep_dir)
    rows = [job_row(j) for j in jobs]
    if label_by_multiplier:
        for r in rows:
            mult = (r["head_lr"] / r["lr"]) if r.get("head_lr") else 1.0
            r["row"] = f"{r['head'].upper()} x{mult:g}"
    md = seed_summary(rows, baseline, title, sweep_dir) + "\n" + render(rows, sweep_dir)
    md += mechanism_report(rows, sweep_dir)
    write_table(sweep_dir / table, md)
    sys.stdout.write(md)
    print(f"wrote {sweep_dir / table}")
    return 0
