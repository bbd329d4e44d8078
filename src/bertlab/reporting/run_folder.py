"""One run folder, read once: the loader behind every table (each ``python -m bertlab.reproduce``
table and ``python -m bertlab.report``).

A run folder is what ``python -m bertlab.train`` (or ``bertlab.evaluate``) leaves::

    <run>/.hydra/config.yaml      the composed config as written (interpolations kept, not resolved)
    <run>/.hydra/overrides.yaml   the run's own overrides (``key=value`` list)
    <run>/metrics.json            written last, when the run finished
    <run>/csv/metrics.csv         Lightning's CSVLogger history (may be partial)
    <run>/status.json             running / done / failed (with the one-line reason) / killed

:func:`read_run` reads the overrides, ``metrics.json``, the history and, for a run that did not
finish, its reason; the config is read the first time it is asked for (``bertlab.report`` never
does) and kept. A run whose ``metrics.json`` is missing or unreadable is **failed**
(``failure`` says why); what its partial history holds is still there. A damaged file a table
needs (a config or overrides file that is not YAML, a failed run whose metrics a single-run table
needs) is a :class:`~bertlab.utils.errors.DataError`: one line naming the file.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from bertlab.utils.errors import DataError
from bertlab.utils.run_status import read_status

__all__ = ["Run", "read_run", "read_yaml", "parse_override", "to_float", "epoch_values", "cfg_get"]


def read_yaml(path: Path) -> Any:
    """A YAML file; a :class:`DataError` naming it when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.MarkedYAMLError as err:  # one line: the file, its line, the problem
        mark = err.problem_mark or err.context_mark
        raise DataError(path, mark.line + 1 if mark else None, f"not YAML ({err.problem or err.context})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DataError(path, None, f"cannot read YAML: {' '.join(str(err).split())}") from None


def parse_override(text: str) -> tuple[str, str]:
    """``"+a.b=1" -> ("a.b", "1")``; ``"~a.b" -> ("a.b", "(deleted)")``."""
    text = str(text)
    if text.startswith("~"):
        return text[1:].split("=", 1)[0], "(deleted)"
    key, _, value = text.partition("=")
    return key.lstrip("+"), value


def to_float(cell: Any) -> float | None:
    """A finite number, else None (empty cells, text, bools, NaN, inf)."""
    if cell is None or cell == "" or isinstance(cell, bool):
        return None
    try:
        v = float(cell)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def cfg_get(cfg: Any, dotted: str, default: Any = None) -> Any:
    """``cfg["a"]["b"]`` for ``"a.b"``; ``default`` when a part is missing."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a Lightning ``metrics.csv`` with their numeric cells (others dropped)."""
    if not path.is_file():
        return []
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                parsed = {k: v for k, v in ((k, to_float(c)) for k, c in row.items() if k) if v is not None}
                if parsed:
                    rows.append(parsed)
    except (OSError, UnicodeDecodeError, csv.Error):
        pass  # a partial / damaged history (a killed run): keep what was read
    return rows


def _read_metrics(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(metrics.json, None)``, or ``(None, why the run counts as failed)``."""
    if not path.is_file():
        return None, "no metrics.json (the job did not finish)"
    try:
        with open(path, encoding="utf-8") as fh:
            metrics = json.load(fh)
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"metrics.json unreadable ({err})"
    return metrics, None


def epoch_values(run: Any, metric: str) -> list[tuple[Any, float]]:
    """``(epoch, value)`` for every history row of ``run`` that holds ``metric``, in order."""
    return [(r.get("epoch"), r[metric]) for r in run.history if metric in r]


@dataclass(eq=False)
class Run:
    """A run folder as :func:`read_run` read it."""

    path: Path
    overrides: list[str]  #: ``.hydra/overrides.yaml``, [] when there is none
    metrics: dict[str, Any] | None  #: ``metrics.json``; None for a failed run
    history: list[dict[str, float]]  #: ``csv/metrics.csv`` rows, numeric cells only
    failure: str | None = None  #: why the run counts as failed (None: it finished)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def ok(self) -> bool:
        return self.failure is None

    @cached_property
    def params(self) -> dict[str, str]:
        """The overrides as ``{key: value}`` (``~key``: ``"(deleted)"``)."""
        return dict(parse_override(o) for o in self.overrides)

    @cached_property
    def config(self) -> dict[str, Any]:
        """``.hydra/config.yaml`` as written (interpolations kept), read once; {} when there is none."""
        path = self.path / ".hydra" / "config.yaml"
        if not path.is_file():
            return {}
        cfg = read_yaml(path)
        if cfg is None:
            return {}
        if not isinstance(cfg, dict):
            raise DataError(path, None, "not a config (expected a YAML mapping)")
        return cfg

    def cfg(self, dotted: str, default: Any = None) -> Any:
        """A key of the config (``"optimizer.lr"``), ``default`` when missing."""
        return cfg_get(self.config, dotted, default)

    def require(self, dotted: str) -> Any:
        """A key of the config a table cannot do without; a :class:`DataError` naming the file
        and the key when it is missing."""
        value = self.cfg(dotted)
        if value is None:
            raise DataError(self.path / ".hydra" / "config.yaml", None, f"no {dotted} (a table needs it)")
        return value

    @property
    def test(self) -> dict[str, Any]:
        """``metrics.json``'s ``test`` section, {} when there is none."""
        return (self.metrics or {}).get("test") or {}

    def values(self, metric: str) -> list[tuple[Any, float]]:
        """``(epoch, value)`` of every history row holding ``metric`` (:func:`epoch_values`)."""
        return epoch_values(self, metric)

    def last(self, metric: str) -> float | None:
        """The last logged value of ``metric``, None when never logged."""
        vals = self.values(metric)
        return vals[-1][1] if vals else None

    def finished_metrics(self) -> dict[str, Any]:
        """``metrics.json`` of a run a table cannot do without; a :class:`DataError` naming the
        file when the run did not finish or the file is damaged."""
        if self.metrics is None:
            raise DataError(self.path / "metrics.json", None, self.failure or "no metrics.json")
        return self.metrics


def read_run(path: str | os.PathLike) -> Run:
    """Read the run folder ``path`` (see the module docstring).

    Raises:
        DataError: a damaged ``.hydra/overrides.yaml`` (not YAML, not a list).
    """
    path = Path(path)
    ov_file = path / ".hydra" / "overrides.yaml"
    overrides = read_yaml(ov_file) if ov_file.is_file() else []
    if overrides is None:
        overrides = []
    if not isinstance(overrides, list):
        raise DataError(ov_file, None, "expected a YAML list of key=value overrides")
    metrics, failure = _read_metrics(path / "metrics.json")
    if failure is not None:  # the run's own one-line reason, when it recorded one
        reason = read_status(path).get("error")
        if reason:
            failure = f"{failure}: {reason}"
    history = _read_history(path / "csv" / "metrics.csv")
    return Run(path, [str(o) for o in overrides], metrics, history, failure)
