"""Summarise a Hydra multirun (a sweep) as a markdown table and a bar chart.

A multirun folder, as ``python -m bertlab.train -m ...`` leaves it::

    <dir>/multirun.yaml                      the sweep's hydra config (overrides as typed);
                                             an Optuna sweep (hparams_search=...) has none:
                                             its search space is read from a job's
                                             .hydra/hydra.yaml (hydra.sweeper.params) and
                                             the study's best from optimization_results.yaml
    <dir>/<job>/.hydra/overrides.yaml        the job's own overrides (``key=value`` list)
    <dir>/<job>/metrics.json                 written by bertlab.train when the job succeeds
    <dir>/<job>/csv/metrics.csv              Lightning's CSVLogger history (may be partial)

A job whose ``metrics.json`` is missing or unreadable is **failed** (it crashed or was
killed); whatever its partial CSV history holds is still shown (best and epoch-1 value),
but it has no final value and no test metrics, and the chart shows it as missing.

For the chosen metric (default ``val/f1``) every job gets

* ``final``: the value in ``metrics.json`` (the flat key, e.g. ``"val/f1"``, i.e. the value
  of the last validation; a ``"test/f1"`` style name is looked up in the nested ``"test"``
  dict), else the last value in the CSV history;
* ``best`` and its epoch: the maximum (minimum for a metric whose name contains "loss", or
  as ``mode`` says) over the CSV history (and the final value);
* ``epoch 1``: the value logged at the end of the first epoch (the last CSV row with
  ``epoch == 0`` that holds the metric).

The swept parameters are the override keys whose value differs between jobs (all keys
when there is a single job); keys common to all jobs are listed above the table.

Jobs that differ only in their ``seed`` form a **group** (its non-seed swept overrides): every
group gets ``n`` (its finished jobs), its seeds, and mean ± std over them of final / best /
epoch-1 and the test metrics (a table under the jobs' one, when some group has several jobs),
and its learning curve (``report_curve.png``: the metric per epoch, a thin line per job and a
thick one per group, the mean over its seeds; :func:`plot_curves`).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertlab.reporting import plots
from bertlab.reporting.run_folder import Run, epoch_values, read_run, read_yaml, to_float
from bertlab.utils.atomic import atomic_write_text
from bertlab.utils.errors import ConfigError, DataError

__all__ = [
    "MultirunReport",
    "load_multirun",
    "build_report",
    "epoch_values",
    "mean_std",
    "plot_curves",
    "render_markdown",
    "plot_report",
    "write_report",
]

_MODES = ("auto", "max", "min")
#: the override whose values a group averages over
SEED_KEY = "seed"


@dataclass
class MultirunReport:
    """Everything the table and the chart show."""

    path: Path
    metric: str
    mode: str  #: "max" or "min" (resolved)
    sweep: list[str]  #: the sweep's overrides as typed (from multirun.yaml)
    swept_keys: list[str]
    common: dict[str, str]
    test_keys: list[str]
    jobs: list[Run]
    rows: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)  #: jobs alike but for their seed
    optuna: dict[str, Any] | None = None  #: an Optuna sweep's optimization_results.yaml


# --------------------------------------------------------------------------- reading
def _job_sort_key(p: Path) -> tuple:
    return (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)


def _sweeper_params(job_dir: Path) -> list[str]:
    """``hydra.sweeper.params`` of a job's ``.hydra/hydra.yaml`` as ``key=value`` (an Optuna
    sweep's search space); [] when there is none."""
    path = job_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return []
    cfg = read_yaml(path)
    try:
        params = cfg["hydra"]["sweeper"]["params"] or {}
    except (KeyError, TypeError):
        return []
    return [f"{k}={v}" for k, v in params.items()] if isinstance(params, dict) else []


def load_multirun(path: str | os.PathLike) -> tuple[list[str], list[Run]]:
    """The sweep's overrides (from ``multirun.yaml``; an Optuna sweep, which has none: its
    search space) and its jobs, in job-number order.

    Raises:
        DataError: not a folder, or no job folder (``<n>/.hydra``) in it.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, None, "not a folder (expected a Hydra multirun folder)")
    job_dirs = sorted((p for p in root.iterdir() if p.is_dir() and (p / ".hydra").is_dir()), key=_job_sort_key)
    myaml = root / "multirun.yaml"
    if not myaml.is_file() and not job_dirs:
        raise DataError(root, None, "not a Hydra multirun folder: no multirun.yaml and no job folder (<job>/.hydra/)")
    sweep: list[str] = []
    if myaml.is_file():
        cfg = read_yaml(myaml) or {}
        try:
            sweep = [str(o) for o in (cfg["hydra"]["overrides"]["task"] or [])]
        except (KeyError, TypeError):
            pass
    elif job_dirs:
        sweep = _sweeper_params(job_dirs[0])
    if not job_dirs:
        raise DataError(root, None, "Hydra multirun folder without any job folder (<job>/.hydra/)")
    return sweep, [read_run(p) for p in job_dirs]


# --------------------------------------------------------------------------- summarising
def _lookup(metrics: dict[str, Any] | None, name: str) -> float | None:
    """``metrics[name]``, or ``metrics[a][b]`` for ``name == "a/b"`` (nested dicts)."""
    if not metrics:
        return None
    if name in metrics:
        return to_float(metrics[name])
    head, sep, rest = name.partition("/")
    if sep and isinstance(metrics.get(head), dict):
        return _lookup(metrics[head], rest)
    return None


def _metric_names(job: Run) -> set[str]:
    names = {k for row in job.history for k in row if k not in ("epoch", "step")}
    for k, v in (job.metrics or {}).items():
        if isinstance(v, dict):
            names |= {f"{k}/{kk}" for kk, vv in v.items() if to_float(vv) is not None}
        elif to_float(v) is not None:
            names.add(k)
    return names


def _summary(job: Run, metric: str, mode: str) -> dict[str, Any]:
    values = [(row.get("epoch"), row[metric]) for row in job.history if metric in row]
    final = _lookup(job.metrics, metric) if job.ok else None
    if job.ok and final is None and values:
        final = values[-1][1]
    candidates = values + ([(None, final)] if final is not None else [])
    best = best_epoch = None
    if candidates:
        pick = max if mode == "max" else min
        best_epoch, best = pick(candidates, key=lambda ev: ev[1])  # first best on ties
        if best_epoch is None:  # only the final value: its epoch is the last one logged
            best_epoch = next((e for e, v in reversed(values) if v == best), None)
    epoch1 = next((v for e, v in reversed(values) if e == 0), None)
    return {
        "final": final,
        "best": best,
        "best_epoch": None if best_epoch is None else int(best_epoch),
        "epoch1": epoch1,
    }


def _test_keys(jobs: list[Run]) -> list[str]:
    keys: set[str] = set()
    for job in jobs:
        test = (job.metrics or {}).get("test")
        if isinstance(test, dict):
            keys |= {k for k, v in test.items() if to_float(v) is not None and not k.startswith("n_")}
    first = [k for k in ("f1", "precision", "recall") if k in keys]
    return first + sorted(keys - set(first))


def build_report(path: str | os.PathLike, metric: str = "val/f1", mode: str = "auto") -> MultirunReport:
    """Read a multirun folder and compute one row per job.

    Args:
        path: the multirun folder.
        metric: the metric to summarise (a key of ``metrics.json`` / column of ``metrics.csv``).
        mode: "max", "min" or "auto" (min when the name contains "loss", else max).

    Raises:
        DataError: not a multirun folder (see :func:`load_multirun`).
        ConfigError: a bad ``mode``, or a metric that no job logged while others were logged.
    """
    if mode not in _MODES:
        raise ConfigError("--mode", f"unknown mode {mode!r}; choose one of {_MODES}")
    resolved = ("min" if "loss" in metric.lower() else "max") if mode == "auto" else mode
    sweep, jobs = load_multirun(path)
    known = set().union(*(_metric_names(j) for j in jobs))
    if metric not in known and known:
        raise ConfigError("--metric", f"{metric!r} was logged by no job; available: {', '.join(sorted(known))}")

    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.params if k not in keys]
    if len(jobs) > 1:
        swept = [k for k in keys if len({job.params.get(k) for job in jobs}) > 1]
    else:
        swept = list(keys)
    common = {k: jobs[0].params[k] for k in keys if k not in swept}
    report = MultirunReport(Path(path), metric, resolved, sweep, swept, common, _test_keys(jobs), jobs)
    for job in jobs:
        row: dict[str, Any] = {"job": job.name, "status": "ok" if job.ok else "failed"}
        row.update({k: job.params.get(k) for k in swept})
        row.update(_summary(job, metric, resolved))
        test = (job.metrics or {}).get("test")
        for k in report.test_keys:
            row[f"test/{k}"] = to_float(test.get(k)) if isinstance(test, dict) else None
        report.rows.append(row)
    report.groups = _groups(report)
    results = Path(path) / "optimization_results.yaml"
    if results.is_file():
        report.optuna = read_yaml(results) or {}
    return report


def group_label(params: dict[str, Any], keys: Sequence[str]) -> str:
    """``"k=v, k2=v2"`` of the non-seed swept keys (``all`` when there is none)."""
    return ", ".join(f"{k}={params.get(k)}" for k in keys if k != SEED_KEY) or "all"


def _groups(report: MultirunReport) -> list[dict[str, Any]]:
    """One entry per group of jobs alike but for their seed, in the order of their first job."""
    groups: dict[str, dict[str, Any]] = {}
    for job, row in zip(report.jobs, report.rows):
        g = groups.setdefault(
            group_label(job.params, report.swept_keys),
            {"group": group_label(job.params, report.swept_keys), "jobs": [], "rows": []},
        )
        g["jobs"].append(job)
        g["rows"].append(row)
    for g in groups.values():
        ok = [r for r in g["rows"] if r["status"] == "ok"]
        g["n"] = len(ok)
        g["failed"] = len(g["rows"]) - len(ok)
        g["seeds"] = [j.params.get(SEED_KEY, "-") for j, r in zip(g["jobs"], g["rows"]) if r["status"] == "ok"]
        for key in ("final", "best", "epoch1", *(f"test/{k}" for k in report.test_keys)):
            g[key] = [r.get(key) for r in ok]
    return list(groups.values())


def mean_std(values: Sequence[float | None], scale: float = 1.0, fmt: str = ".2f") -> str:
    """``"mean ± std"`` of the values that are not None (one value: the value; none: ``-``)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    mean = format(statistics.mean(vals) * scale, fmt)
    return mean if len(vals) == 1 else f"{mean} ± {format(statistics.stdev(vals) * scale, fmt.replace('+', ''))}"


# --------------------------------------------------------------------------- writing
def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v).replace("|", "\\|")


def render_markdown(report: MultirunReport) -> str:
    """The report as markdown: a short header, the table, then the failed jobs' reasons."""
    m = report.metric
    optuna = report.optuna is not None
    lines = [f"# {'Optuna sweep' if optuna else 'Multirun'} report: `{report.path}`", ""]
    if report.sweep:
        lines.append(("Search space" if optuna else "Sweep") + ": `" + " ".join(report.sweep) + "`")
        lines.append("")
    if report.optuna is not None and "best_value" in report.optuna:
        best = ", ".join(f"{k}={v}" for k, v in (report.optuna.get("best_params") or {}).items())
        lines += [
            f"Optuna's best trial (optimization_results.yaml): {_cell(report.optuna['best_value'])} ({best}).",
            "",
        ]
    if report.common:
        lines.append("Common overrides: " + ", ".join(f"`{k}={v}`" for k, v in report.common.items()))
        lines.append("")
    n_failed = sum(not j.ok for j in report.jobs)
    lines.append(f"Metric `{m}` ({report.mode} is best); {len(report.jobs)} jobs, {n_failed} failed.")
    lines.append("")
    header = [
        "job",
        *report.swept_keys,
        "status",
        f"final {m}",
        f"best {m}",
        "best epoch",
        f"epoch-1 {m}",
        *(f"test/{k}" for k in report.test_keys),
    ]
    keys = [
        "job",
        *report.swept_keys,
        "status",
        "final",
        "best",
        "best_epoch",
        "epoch1",
        *(f"test/{k}" for k in report.test_keys),
    ]
    lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
    lines.append(
        "|" + "|".join("---" if k in ("job", "status") or k in report.swept_keys else "---:" for k in keys) + "|"
    )
    for row in report.rows:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    best_rows = [r for r in report.rows if r["best"] is not None and r["status"] == "ok"]  # never a crashed job
    if best_rows:
        pick = max if report.mode == "max" else min
        top = pick(best_rows, key=lambda r: r["best"])
        params = ", ".join(f"{k}={top[k]}" for k in report.swept_keys)
        lines += [
            "",
            f"Best `{m}`: {top['best']:.4f} (job {top['job']}{': ' + params if params else ''}, "
            f"epoch {top['best_epoch']}).",
        ]
    if len(report.groups) < len(report.jobs):
        lines += ["", *_group_table(report)]
    failed = [j for j in report.jobs if not j.ok]
    if failed:
        lines += ["", "Failed jobs:", ""] + [f"- job {j.name}: {j.failure}" for j in failed]
    lines.append("")
    lines.append(
        "Final = value in metrics.json (last validation); best = over the CSV history; "
        "epoch-1 = last value logged with epoch 0."
    )
    return "\n".join(lines) + "\n"


def _group_table(report: MultirunReport) -> list[str]:
    """The groups (jobs alike but for their seed): n, seeds, mean ± std over the finished jobs."""
    m = report.metric
    tests = [f"test/{k}" for k in report.test_keys]
    head = ["group", "n", "seeds", f"final {m}", f"best {m}", f"epoch-1 {m}", *tests]
    lines = [
        f"Groups (jobs alike but for `{SEED_KEY}`): mean ± std over their finished jobs.",
        "",
        "| " + " | ".join(_cell(h) for h in head) + " |",
        "|---|---:|---|" + "---:|" * (len(head) - 3),
    ]
    for g in report.groups:
        n = f"{g['n']}" + (f" ({g['failed']} failed)" if g["failed"] else "")
        cells = [_cell(g["group"]), n, ", ".join(map(str, g["seeds"])) or "-"]
        cells += [mean_std(g[k], fmt=".4f") for k in ("final", "best", "epoch1", *tests)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _short_label(report: MultirunReport, row: dict[str, Any]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={row[k]}" for k in report.swept_keys]
    return "\n".join([f"job {row['job']}", *parts])


def plot_report(report: MultirunReport, path: str | os.PathLike) -> None:
    """A bar chart of the best and final metric per job (failed jobs: no bars, marked)."""
    ok = [r["status"] == "ok" for r in report.rows]
    plots.close(
        plots.best_final_bars_png(
            [_short_label(report, r) for r in report.rows],
            [r["best"] if good and r["best"] is not None else math.nan for r, good in zip(report.rows, ok)],
            [r["final"] if good and r["final"] is not None else math.nan for r, good in zip(report.rows, ok)],
            [not good for good in ok],
            path,
            ylabel=report.metric,
            title=f"{report.metric} per job ({report.mode} is best)",
        )
    )


def plot_curves(
    jobs: Sequence[Run],
    rows: Sequence[dict[str, Any]],
    out: Path,
    metric: str,
    label: str,
    *,
    arms: Sequence[str] | None = None,
) -> Path | None:
    """``metric`` after every epoch (x = epoch number, 1-based) of every run that finished,
    grouped by the ``arm`` and ``seed`` of its row, as ``<out stem>_curve.png``; None when no
    run logged it."""
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {a: {} for a in arms or []}
    for job, r in zip(jobs, rows, strict=True):
        points: list[tuple[float, float]] = [
            (int(e) + 1, float(v)) for e, v in epoch_values(job, metric) if e is not None
        ]
        if points and not r.get("failed"):
            curves.setdefault(str(r["arm"]), {})[str(r.get("seed"))] = points
    curves = {a: seeds for a, seeds in curves.items() if seeds}
    if not curves:
        return None
    png = out.with_name(out.stem + "_curve.png")
    png.parent.mkdir(parents=True, exist_ok=True)
    plots.close(plots.arm_curves_png(curves, str(png), title=f"{label} per epoch ({out.stem})", ylabel=label))
    return png


def write_report(report: MultirunReport, out_dir: str | os.PathLike | None = None) -> tuple[Path, ...]:
    """Write ``report.md``, ``report.png`` (best and final metric per job) and, when a job
    logged the metric per epoch, ``report_curve.png`` (every group's learning curve) into
    ``out_dir`` (default: the multirun folder), each atomically; returns the files written."""
    out = Path(out_dir) if out_dir is not None else report.path
    out.mkdir(parents=True, exist_ok=True)
    md, png = out / "report.md", out / "report.png"
    rows = [
        {"arm": g["group"], "seed": job.params.get(SEED_KEY, job.name), "failed": job.failure}
        for g in report.groups
        for job in g["jobs"]
    ]
    jobs = [job for g in report.groups for job in g["jobs"]]
    curve = plot_curves(jobs, rows, md, report.metric, report.metric)
    text = render_markdown(report)
    if curve is not None:
        text += (
            f"\nPlot: `{curve.name}`: {report.metric} per epoch, a thin line per job, a thick one per group "
            "(the mean over its seeds).\n"
        )
    atomic_write_text(md, text)
    plot_report(report, png)
    return (md, png) if curve is None else (md, png, curve)
