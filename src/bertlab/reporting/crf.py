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
* the mechanism (:func:`mechanism_report`) with its two PNGs next to the table;
* for a sweep whose first layer is pretrained, each run paired with the fresh-layer run of the
  same row and seed (:func:`paired_report`; the fresh runs: a sweep folder or a table written
  here, :func:`load_fresh`).

A folder of sweep folders (rows or seeds run apart) tabulates as one table.

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
        "pretrained": job.cfg("encoder.pretrained"),
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


def seed_summary(rows: list[dict], baseline: str, title: str, sweep_dir: Path, seconds: float | None = None) -> str:
    """Rows x seeds through the shared seed-sweep table: mean ± std per row, every row's test F1
    paired with the ``baseline`` row's run of the same seed (SE and verdict)."""
    runs = [
        {**r, "arm": r["row"], "job": r.get("job", r["path"].name), "failed": None if r["ok"] else "no metrics.json"}
        for r in rows
    ]
    ss.add_paired_deltas(runs, baseline, "test_f1")
    cols = [ss.Column(c.header.format(base=baseline), c.key, c.scale, c.fmt) for c in SUMMARY]
    order = list(dict.fromkeys(r["row"] for r in rows))
    return ss.render(runs, cols, title=title, source=str(sweep_dir), arms=order, seconds=seconds)


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


#: the columns paired between a pretrained and a fresh first layer (values as the tables print them)
PAIRED = [c for c in SUMMARY if c.key in ("val_epoch1", "val_best", "test_epoch1", "test_f1")]


def read_runs_table(path: Path) -> list[dict]:
    """The runs of a table :func:`write_report` wrote (its seed summary's per-run table,
    ``| job | arm | seed | ...``): ``row``, ``seed``, ``ok`` and the :data:`PAIRED` values, as
    printed (None for ``-``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| job | arm | seed |")), None)
    if start is None:
        raise DataError(str(path), None, "no per-run table ('| job | arm | seed | ...'): not a crf_layer1 table")
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    missing = [c.header for c in PAIRED if c.header not in header]
    if missing or "status" not in header:
        raise DataError(str(path), start + 1, f"the per-run table has no column {(missing or ['status'])[0]!r}")
    runs = []
    for n, line in enumerate(lines[start + 2 :], start + 3):
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(header):
            raise DataError(str(path), n, f"{len(cells)} cells, the header has {len(header)}")
        cell = dict(zip(header, cells))
        run = {"row": cell["arm"], "seed": cell["seed"], "ok": cell["status"] == "ok"}
        for c in PAIRED:
            try:
                run[c.key] = None if cell[c.header] == "-" else float(cell[c.header])
            except ValueError:
                raise DataError(str(path), n, f"{c.header}: not a number: {cell[c.header]!r}") from None
        runs.append(run)
    if not runs:
        raise DataError(str(path), start + 1, "the per-run table has no rows")
    return runs


def load_fresh(source: Path) -> list[dict]:
    """The fresh-layer runs to pair with: a sweep folder (every run's config must have no
    ``encoder.pretrained``) or a table :func:`write_report` wrote (:func:`read_runs_table`)."""
    if source.is_dir():
        if not (source / "multirun.yaml").is_file():
            raise DataError(str(source / "multirun.yaml"), None, "no such file: not a sweep folder (--fresh)")
        rows = [job_row(j) for j in load_multirun(source)[1]]
        loaded = [r for r in rows if r.get("pretrained")]
        if loaded:
            raise DataError(
                str(loaded[0]["path"] / ".hydra" / "config.yaml"),
                None,
                f"encoder.pretrained={loaded[0]['pretrained']}: --fresh must be a sweep with a fresh first layer",
            )
        return rows
    if not source.is_file():
        raise DataError(str(source), None, "no such file or folder (--fresh: the fresh-layer sweep or its table)")
    return read_runs_table(source)


def _printed(value: float | None, col: ss.Column) -> float | None:
    """The value as the per-run tables print it (differences are taken from printed values)."""
    return None if value is None else float(format(value, col.fmt))


def paired_report(rows: list[dict], fresh: list[dict], fresh_source: str) -> str:
    """Pretrained minus fresh first layer, paired by row and seed: per row and column the fresh
    and pretrained mean ± std, the per-seed differences (of the printed values) and their
    mean ± std with SE and verdict. Rows or seeds without both runs finished are left out
    (named under the table)."""
    fresh_of = {(r["row"], str(r["seed"])): r for r in fresh if r.get("ok")}
    out = [
        "",
        f"Pretrained minus fresh first layer, paired by row and seed (fresh runs: `{fresh_source}`); "
        "per-seed differences of the printed per-run values; mean ± std, SE = std/√n, holds only beyond 2 SE:",
        "",
        "| row | column | seeds | fresh | pretrained | pretrained - fresh per seed | mean ± std (SE, verdict) |",
        "|---|---|---|---|---|---|---|",
    ]
    unpaired = []
    for name in dict.fromkeys(r["row"] for r in rows):
        runs = sorted((r for r in rows if r["row"] == name and r.get("ok")), key=lambda r: str(r["seed"]).zfill(9))
        pairs = [(r, fresh_of[(name, str(r["seed"]))]) for r in runs if (name, str(r["seed"])) in fresh_of]
        unpaired += [f"{name} seed {r['seed']}" for r in runs if (name, str(r["seed"])) not in fresh_of]
        if not pairs:
            continue
        seeds = "/".join(str(p["seed"]) for p, _ in pairs)
        for col in PAIRED:
            both = [(_printed(p.get(col.key), col), _printed(f.get(col.key), col)) for p, f in pairs]
            deltas = [a - b for a, b in both if a is not None and b is not None]
            if not deltas:
                continue
            cell = ss.mean_std(deltas, 1.0, "+.4f")
            if len(deltas) > 1:
                cell += f" ({ss.paired_verdict(deltas, 1.0, '+.4f')})"
            out.append(
                f"| {name} | {col.header} | {seeds} | {ss.mean_std([b for _, b in both], 1.0, col.fmt)} "
                f"| {ss.mean_std([a for a, _ in both], 1.0, col.fmt)} | {' / '.join(f'{d:+.4f}' for d in deltas)} "
                f"| {cell} |"
            )
    if len(out) == 5:
        raise DataError(fresh_source, None, "no run of this sweep has a fresh-layer run of the same row and seed")
    if unpaired:
        out += ["", "Not paired (no finished fresh run of that row and seed): " + ", ".join(unpaired) + "."]
    return "\n".join(out) + "\n"


def _shown(path: Path) -> str:
    """A path as the tables name it: from the working directory when under it."""
    full, here = path.resolve(), Path.cwd().resolve()
    return str(full.relative_to(here)) if full.is_relative_to(here) else str(path)


def write_report(
    sweep_dir: Path,
    table: str,
    baseline: str = "CRF-1",
    title: str = "CRF layer-1 table",
    label_by_multiplier: bool = False,
    fresh: Path | None = None,
    seconds: float | None = None,
) -> int:
    """Tabulate the sweep folder (or a folder of sweep folders) into ``<sweep_dir>/<table>`` and
    print it: the seed summary (paired with ``baseline``), every run with its transitions, then
    the mechanism (:func:`mechanism_report`, PNGs into the sweep folder). ``label_by_multiplier``:
    name every row "<HEAD> x<multiplier>" (a sweep of one row file over the multiplier).
    ``fresh``: the sweep's first layer is pretrained (every run's config says so); pair it with
    these fresh-layer runs (:func:`paired_report`, between the seed summary and the per-run
    table). ``seconds``: the sweep's wall time (stated under the title; None when only tabulating)."""
    one = (sweep_dir / "multirun.yaml").is_file()
    if not one and not (sweep_dir.is_dir() and any(p.is_file() for p in sweep_dir.glob("*/multirun.yaml"))):
        raise DataError(str(sweep_dir / "multirun.yaml"), None, "no such file: the sweep did not start")
    jobs = ss.load_jobs(sweep_dir)  # one sweep, or every sweep folder directly inside
    rows = [job_row(j) for j in jobs]
    if label_by_multiplier:
        for r in rows:
            mult = (r["head_lr"] / r["lr"]) if r.get("head_lr") else 1.0
            r["row"] = f"{r['head'].upper()} x{mult:g}"
    if not one:  # several sweeps: each row's runs together, by seed; jobs named by their sweep
        first = {name: i for i, name in enumerate(dict.fromkeys(r["row"] for r in rows))}
        rows.sort(key=lambda r: (first[r["row"]], str(r.get("seed")).zfill(9)))
        for r in rows:
            r["job"] = r["path"].relative_to(sweep_dir).as_posix()
    md = seed_summary(rows, baseline, title, sweep_dir, seconds)
    if fresh is not None:
        fresh_runs = [r for r in rows if not r.get("pretrained")]
        if fresh_runs:
            raise DataError(
                str(fresh_runs[0]["path"] / ".hydra" / "config.yaml"),
                None,
                "encoder.pretrained is not set: not a pretrained-first-layer sweep (--encoder pretrained)",
            )
        md += paired_report(rows, load_fresh(fresh), _shown(fresh))
    md += "\n" + render(rows, sweep_dir)
    md += mechanism_report(rows, sweep_dir)
    write_table(sweep_dir / table, md)
    sys.stdout.write(md)
    print(f"wrote {sweep_dir / table}")
    return 0
