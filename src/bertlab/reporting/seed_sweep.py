"""Arms x seeds comparisons: run an experiment's Hydra multirun (or read a finished one) and
tabulate every arm as mean ± std over its seeds, then one row per run.

Used by the seed-sweep reproductions (``python -m bertlab.reproduce albert | orthogonality |
pretrain | ner``, built by :func:`bertlab.reproduce.base.seed_sweep`). A module gives

* the experiment, and either its own ``hydra.sweeper.params`` (one multirun) or ``sweeps``: a
  list of override lists, each run as its own multirun into ``<dir>/<i>`` (arms that are not a
  cross product, e.g. a regulariser kind with its own weights), all tabulated together;
* its :class:`SeedSweepTable` (defined with the post's other tables in ``bertlab.reporting``):
  ``row(run) -> dict``, the run's arm name, seed and measured values (read from the
  :class:`~bertlab.reporting.run_folder.Run`: its config, ``metrics.json`` and CSV history);
  the :class:`Column` list of the table; a title / footer; optionally
  ``paired=(baseline arm, key or keys)``: every run also gets ``delta_<key>``, its value minus
  the baseline arm's run with the same seed (:func:`add_paired_deltas`).

A failed job (no ``metrics.json``) is listed per run with its reason and left out of the means;
the command then exits 1.

    python -m bertlab.reproduce <name> [--out FILE] [--multirun DIR] [-- key=value ...]
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertlab.reporting.multirun import load_multirun, mean_std, plot_curves
from bertlab.reporting.run_folder import Run
from bertlab.reporting.tables import write_table
from bertlab.utils.hydra_utils import repo_root

__all__ = [
    "Column",
    "SeedSweepTable",
    "add_paired_deltas",
    "load_jobs",
    "mean_std",
    "paired_verdict",
    "plot_curves",
    "unseen_test_acc",
    "render",
    "summarise",
]

ROOT = Path(repo_root())


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    scale: float = 1.0  #: 100 for a fraction shown as a percentage
    fmt: str = ".2f"


@dataclass(frozen=True)
class SeedSweepTable:
    """An arms x seeds table: what :func:`summarise` takes besides the folders."""

    title: str
    row: Callable[[Run], dict[str, Any]]  #: a run's arm, seed and measured values
    columns: Sequence[Column]
    arms: Sequence[str] | None = None  #: listed first, in this order; each must have a finished run
    paired: tuple[str, str | Sequence[str]] | None = None  #: (baseline arm, key or keys)
    footer: str = ""
    curve: tuple[str, str] | None = None  #: (metric, label): the learning-curve PNG

    def write(self, sweep_dir: Path, out: Path, seconds: float | None = None) -> int:
        """:func:`summarise` the runs of ``sweep_dir`` into ``out``; the exit status."""
        return summarise(
            sweep_dir,
            out,
            row=self.row,
            columns=self.columns,
            title=self.title,
            arms=self.arms,
            paired=self.paired,
            footer=self.footer,
            seconds=seconds,
            curve=self.curve,
        )


def unseen_test_acc(job: Run) -> float | None:
    """A classification run's test accuracy over the texts not in the training split: from
    ``metrics.json`` (``test.acc_unseen``), else recomputed from its saved test predictions
    (runs that predate the metric) against the corpus in ``data.path``."""
    test = (job.metrics or {}).get("test") or {}
    if test.get("acc_unseen") is not None:
        return float(test["acc_unseen"])
    tsv = job.path / "predictions" / "test_labels.tsv"
    corpus = str(job.cfg("data.path", "") or "").replace("${paths.data_dir}", str(ROOT / "data"))
    if not (tsv.is_file() and corpus and Path(corpus).is_file()):
        return None
    return saved_unseen_accuracy(tsv, corpus)[0]


def saved_unseen_accuracy(predictions_tsv: str | os.PathLike, corpus: str | os.PathLike) -> tuple[float | None, int]:
    """:func:`~bertlab.metrics.classification.unseen_accuracy` of a ``save_outputs`` file
    (``text<TAB>predicted<TAB>gold``) against the training split of the sentiment corpus
    ``corpus``: for runs that predate the metric."""
    from bertlab.data.classification_datamodule import SPLIT_FILES
    from bertlab.data.sentiment import read_sentiment
    from bertlab.metrics.classification import unseen_accuracy

    train = {t for t, _ in read_sentiment(str(corpus), SPLIT_FILES["train"])}
    rows = []
    with open(predictions_tsv, encoding="utf-8") as fh:
        for line in fh:
            text, pred, gold = line.rstrip("\n").rsplit("\t", 2)
            rows.append((int(pred) if pred else None, int(gold), text))
    return unseen_accuracy(rows, train)


def add_paired_deltas(rows: list[dict[str, Any]], baseline: str, key: str) -> None:
    """``row["delta_" + key]`` = the row's ``key`` minus that of the ``baseline`` arm's run with
    the SAME seed (seeds fix the initialisation and data order, so the paired difference
    removes the seed's share of the spread); None without such a finished baseline run."""
    base = {str(r.get("seed")): r.get(key) for r in rows if r["arm"] == baseline and not r.get("failed")}
    for r in rows:
        b, v = base.get(str(r.get("seed"))), r.get(key)
        r[f"delta_{key}"] = None if (b is None or v is None or r.get("failed")) else v - b


def paired_verdict(values: Sequence[float | None], scale: float = 1.0, fmt: str = ".2f") -> str:
    """The rule every comparison follows (docs/results.md): a paired difference "holds" only when
    its mean is more than twice its standard error (std / sqrt(n)) away from 0, else it is
    "within the seed spread"; one seed: no spread, no verdict."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return "1 seed: no verdict" if vals else "-"
    mean, se = statistics.mean(vals), statistics.stdev(vals) / len(vals) ** 0.5
    verdict = "holds" if abs(mean) > 2 * se else "within the seed spread"
    return f"SE {format(se * scale, fmt.replace('+', ''))}, n {len(vals)}: {verdict}"


def _cell(value: Any, col: Column) -> str:
    return "-" if value is None else format(value * col.scale, col.fmt)


def _summary_cell(values: Sequence[float | None], col: Column) -> str:
    cell = mean_std(values, col.scale, col.fmt)
    if col.key.startswith("delta_") and cell != "-":
        cell += f" ({paired_verdict(values, col.scale, col.fmt)})"
    return cell


def render(
    rows: list[dict[str, Any]],
    columns: Sequence[Column],
    *,
    title: str,
    source: str,
    seconds: float | None = None,
    arms: Sequence[str] | None = None,
    footer: str = "",
) -> str:
    """Markdown: arms (mean ± std over the runs that finished; ``arms`` first, in that order, then
    any other arm found), then every run."""
    arms = list(dict.fromkeys([*(arms or []), *(r["arm"] for r in rows)]))
    lines = [
        f"# {title}",
        "",
        f"Sweep: `{source}`" + (f", wall time {seconds / 60:.1f} min" if seconds else ""),
        "",
        "| arm | runs | " + " | ".join(c.header for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for arm in arms:
        ok = [r for r in rows if r["arm"] == arm and not r.get("failed")]
        lines.append(
            f"| {arm} | {len(ok)} | " + " | ".join(_summary_cell([r.get(c.key) for r in ok], c) for c in columns) + " |"
        )
    lines += [
        "",
        "mean ± std over seeds; a Δ column (paired by seed) also gives its standard error and verdict: "
        "holds only beyond 2 SE. Per run:",
        "",
        "| job | arm | seed | " + " | ".join(c.header for c in columns) + " | status |",
        "|---|---|---|" + "---|" * len(columns) + "---|",
    ]
    for r in rows:
        status = f"failed: {r['failed']}" if r.get("failed") else "ok"
        lines.append(
            f"| {r['job']} | {r['arm']} | {r.get('seed')} | "
            + " | ".join(_cell(r.get(c.key), c) for c in columns)
            + f" | {status} |"
        )
    if footer:
        lines += ["", footer]
    return "\n".join(lines) + "\n"


def load_jobs(sweep_dir: Path) -> list[Run]:
    """The jobs of one multirun folder, or of every multirun folder directly inside it."""
    if (sweep_dir / "multirun.yaml").is_file() or not sweep_dir.is_dir():
        return load_multirun(sweep_dir)[1]
    subs = sorted(
        (p for p in sweep_dir.iterdir() if (p / "multirun.yaml").is_file()), key=lambda p: (len(p.name), p.name)
    )
    if not subs:
        return load_multirun(sweep_dir)[1]  # its error names the folder
    return [job for sub in subs for job in load_multirun(sub)[1]]


def summarise(
    sweep_dir: Path,
    out: Path,
    *,
    row: Callable[[Run], dict[str, Any]],
    columns: Sequence[Column],
    title: str,
    arms: Sequence[str] | None = None,
    footer: str = "",
    sort_key: Callable[[dict[str, Any]], Any] | None = None,
    paired: tuple[str, str | Sequence[str]] | None = None,
    seconds: float | None = None,
    curve: tuple[str, str] | None = None,
) -> int:
    """Tabulate the jobs of ``sweep_dir`` (see the module docstring) into ``out`` and print it.
    ``curve=(metric, label)``: also plot that logged metric per epoch, one thin line per run and
    the mean of each arm (``<out stem>_curve.png`` next to ``out``, named under the table).
    Exit status 0; 1 when a job failed or an arm of ``arms`` has no finished run."""
    jobs = load_jobs(sweep_dir)
    rows = [
        {
            "job": j.path.relative_to(sweep_dir).as_posix() if j.path.is_relative_to(sweep_dir) else j.name,
            "failed": j.failure,
            **row(j),
        }
        for j in jobs
    ]
    if curve:
        png = plot_curves(jobs, rows, out, *curve, arms=arms)
        if png:
            footer = (footer + "\n\n" if footer else "") + (
                f"Plot: `{png.name}` (next to this table): {curve[1]} after every epoch, "
                "a thin line per run, a thick line per arm (mean over its seeds)."
            )
    if paired:
        baseline, keys = paired
        for key in [keys] if isinstance(keys, str) else keys:
            add_paired_deltas(rows, baseline, key)
    order = {a: i for i, a in enumerate(arms or [])}

    def _seed(r: dict[str, Any]) -> tuple:
        seed = str(r.get("seed"))
        return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)

    rows.sort(key=sort_key or (lambda r: (order.get(r["arm"], len(order)), str(r["arm"]), _seed(r))))
    here, where = Path.cwd().resolve(), sweep_dir.resolve()
    shown = where.relative_to(here) if where.is_relative_to(here) else sweep_dir  # tables name repo paths
    md = render(rows, columns, title=title, source=str(shown), seconds=seconds, arms=arms, footer=footer)
    write_table(out, md)
    sys.stdout.write(md)
    print(f"wrote {out}")
    missing = [a for a in (arms or []) if not any(r["arm"] == a and not r["failed"] for r in rows)]
    if missing:
        print(f"bertlab: error: no finished run for {missing}", file=sys.stderr)
    return 0 if rows and not missing and all(not r["failed"] for r in rows) else 1
