"""Summarise a Hydra multirun (a sweep) as a markdown table and a bar chart.

A multirun folder, as ``python -m bertlab.train -m ...`` leaves it::

    <dir>/multirun.yaml                      the sweep's hydra config (overrides as typed)
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
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bertlab.utils.errors import ConfigError, DataError

__all__ = [
    "JobResult",
    "MultirunReport",
    "load_multirun",
    "build_report",
    "render_markdown",
    "plot_report",
    "write_report",
]

_MODES = ("auto", "max", "min")


@dataclass
class JobResult:
    """One job of the sweep."""

    name: str
    path: Path
    overrides: list[str]
    params: dict[str, str]
    metrics: dict[str, Any] | None  #: metrics.json, None for a failed job
    history: list[dict[str, float]]  #: metrics.csv rows, numeric cells only
    failure: str | None = None  #: why the job counts as failed

    @property
    def ok(self) -> bool:
        return self.failure is None


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
    jobs: list[JobResult]
    rows: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- reading
def _job_sort_key(p: Path) -> tuple:
    return (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)


def _read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DataError(path, None, f"cannot read YAML: {err}") from None


def _parse_override(text: str) -> tuple[str, str]:
    """``"+a.b=1" -> ("a.b", "1")``; ``"~a.b" -> ("a.b", "(deleted)")``."""
    text = str(text)
    if text.startswith("~"):
        return text[1:].split("=", 1)[0], "(deleted)"
    key, _, value = text.partition("=")
    return key.lstrip("+"), value


def _to_float(cell: Any) -> float | None:
    if cell is None or cell == "" or isinstance(cell, bool):
        return None
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a Lightning ``metrics.csv`` with their numeric cells (others dropped)."""
    if not path.is_file():
        return []
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                parsed = {k: v for k, v in ((k, _to_float(c)) for k, c in row.items() if k) if v is not None}
                if parsed:
                    rows.append(parsed)
    except (OSError, UnicodeDecodeError, csv.Error):
        pass  # a partial / damaged history: keep what was read
    return rows


def _read_job(path: Path) -> JobResult:
    ov_file = path / ".hydra" / "overrides.yaml"
    overrides = _read_yaml(ov_file) if ov_file.is_file() else []
    if overrides is None:
        overrides = []
    if not isinstance(overrides, list):
        raise DataError(ov_file, None, "expected a YAML list of key=value overrides")
    overrides = [str(o) for o in overrides]
    params = dict(_parse_override(o) for o in overrides)
    metrics, failure = None, None
    mfile = path / "metrics.json"
    if not mfile.is_file():
        failure = "no metrics.json (the job did not finish)"
    else:
        try:
            with open(mfile, encoding="utf-8") as fh:
                metrics = json.load(fh)
            if not isinstance(metrics, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as err:
            metrics, failure = None, f"metrics.json unreadable ({err})"
    if failure is not None:  # the job's own one-line reason, when it recorded one
        from bertlab.utils.run_status import read_status

        reason = read_status(path).get("error")
        if reason:
            failure = f"{failure}: {reason}"
    history = _read_history(path / "csv" / "metrics.csv")
    return JobResult(path.name, path, overrides, params, metrics, history, failure)


def load_multirun(path: str | os.PathLike) -> tuple[list[str], list[JobResult]]:
    """The sweep's overrides (from ``multirun.yaml``) and its jobs, in job-number order.

    Raises:
        DataError: not a folder, no ``multirun.yaml``, or no job folder (``<n>/.hydra``).
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(root, None, "not a folder (expected a Hydra multirun folder)")
    myaml = root / "multirun.yaml"
    if not myaml.is_file():
        raise DataError(root, None, "not a Hydra multirun folder: no multirun.yaml in it")
    cfg = _read_yaml(myaml) or {}
    sweep: list[str] = []
    try:
        sweep = [str(o) for o in (cfg["hydra"]["overrides"]["task"] or [])]
    except (KeyError, TypeError):
        pass
    job_dirs = sorted((p for p in root.iterdir() if p.is_dir() and (p / ".hydra").is_dir()), key=_job_sort_key)
    if not job_dirs:
        raise DataError(root, None, "Hydra multirun folder without any job folder (<job>/.hydra/)")
    return sweep, [_read_job(p) for p in job_dirs]


# --------------------------------------------------------------------------- summarising
def _lookup(metrics: dict[str, Any] | None, name: str) -> float | None:
    """``metrics[name]``, or ``metrics[a][b]`` for ``name == "a/b"`` (nested dicts)."""
    if not metrics:
        return None
    if name in metrics:
        return _to_float(metrics[name])
    head, sep, rest = name.partition("/")
    if sep and isinstance(metrics.get(head), dict):
        return _lookup(metrics[head], rest)
    return None


def _metric_names(job: JobResult) -> set[str]:
    names = {k for row in job.history for k in row if k not in ("epoch", "step")}
    for k, v in (job.metrics or {}).items():
        if isinstance(v, dict):
            names |= {f"{k}/{kk}" for kk, vv in v.items() if _to_float(vv) is not None}
        elif _to_float(v) is not None:
            names.add(k)
    return names


def _summary(job: JobResult, metric: str, mode: str) -> dict[str, Any]:
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


def _test_keys(jobs: list[JobResult]) -> list[str]:
    keys: set[str] = set()
    for job in jobs:
        test = (job.metrics or {}).get("test")
        if isinstance(test, dict):
            keys |= {k for k, v in test.items() if _to_float(v) is not None and not k.startswith("n_")}
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
            row[f"test/{k}"] = _to_float(test.get(k)) if isinstance(test, dict) else None
        report.rows.append(row)
    return report


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
    lines = [f"# Multirun report: `{report.path}`", ""]
    if report.sweep:
        lines.append("Sweep: `" + " ".join(report.sweep) + "`")
        lines.append("")
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
    failed = [j for j in report.jobs if not j.ok]
    if failed:
        lines += ["", "Failed jobs:", ""] + [f"- job {j.name}: {j.failure}" for j in failed]
    lines.append("")
    lines.append(
        "Final = value in metrics.json (last validation); best = over the CSV history; "
        "epoch-1 = last value logged with epoch 0."
    )
    return "\n".join(lines) + "\n"


def _short_label(report: MultirunReport, row: dict[str, Any]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={row[k]}" for k in report.swept_keys]
    return "\n".join([f"job {row['job']}", *parts])


def plot_report(report: MultirunReport, path: str | os.PathLike) -> None:
    """A bar chart of the best and final metric per job (failed jobs: no bars, marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.rows)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * n + 1.5), 4.0))
    xs = list(range(n))
    width = 0.38
    best = [r["best"] if r["status"] == "ok" and r["best"] is not None else math.nan for r in report.rows]
    final = [r["final"] if r["status"] == "ok" and r["final"] is not None else math.nan for r in report.rows]
    ax.bar([x - width / 2 for x in xs], best, width, label="best", color="#4c72b0")
    ax.bar([x + width / 2 for x in xs], final, width, label="final", color="#dd8452")
    shown = [v for v in best + final if not math.isnan(v)]
    top = max(shown, default=1.0)
    bottom = min(0.0, min(shown, default=0.0))
    for x, r in zip(xs, report.rows):
        if r["status"] != "ok":
            ax.text(
                x,
                bottom + 0.02 * (top - bottom or 1.0),
                "failed",
                ha="center",
                va="bottom",
                color="#c44e52",
                fontsize=9,
                rotation=90,
            )
    ax.set_xticks(xs, labels=[_short_label(report, r) for r in report.rows], fontsize=8)
    ax.set_ylabel(report.metric)
    ax.set_title(f"{report.metric} per job ({report.mode} is best)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report: MultirunReport, out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.png`` into ``out_dir`` (default: the multirun folder)."""
    out = Path(out_dir) if out_dir is not None else report.path
    out.mkdir(parents=True, exist_ok=True)
    md, png = out / "report.md", out / "report.png"
    md.write_text(render_markdown(report), encoding="utf-8")
    plot_report(report, png)
    return md, png
