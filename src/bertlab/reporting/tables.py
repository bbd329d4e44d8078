"""Shared pieces of the results tables (``python -m bertlab.reproduce <name>`` writes them):
the learned transition matrices of a run, the impossible tag moves, formatting numbers and
markdown cells, and writing a table. (The run folder itself is read by
:mod:`bertlab.reporting.run_folder`.)

A run with a CRF or MEMM head saves ``transitions/step*.csv`` (one matrix per validation, the
first one before training) and ``transitions/best.csv`` (the best checkpoint's).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertlab.utils.atomic import atomic_write_text

__all__ = [
    "Transitions",
    "learned_transitions",
    "num",
    "esc",
    "read_matrix",
    "transition_files",
    "reported_transitions",
    "impossible_moves",
    "count_negative",
    "write_table",
]


# ---------------------------------------------------------------------------------------- transitions
def read_matrix(path: str | os.PathLike) -> tuple[list[str], list[list[float]]]:
    """A transition CSV of :class:`bertlab.callbacks.transitions.TransitionHeatmap`: tag names
    (the header after ``from\\to``) and the matrix, rows "from", columns "to"."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0][1:], [[float(x) for x in r[1:]] for r in rows[1:]]


def transition_files(run_dir: str | os.PathLike) -> list[Path]:
    """The run's saved transition matrices in step order (the first is the init)."""
    return sorted((Path(run_dir) / "transitions").glob("step*.csv"))


def reported_transitions(run_dir: str | os.PathLike) -> tuple[Path, str] | None:
    """The matrix of the checkpoint whose scores a table reports, and its label: the best
    checkpoint's (``transitions/best.csv``, written by the TransitionHeatmap callback at each
    improvement of the monitored metric) or, for runs made before that file existed, the last
    saved matrix, labelled "last". None when the run saved no matrix after its init."""
    best = Path(run_dir) / "transitions" / "best.csv"
    if best.is_file():
        return best, "best"
    files = transition_files(run_dir)
    return (files[-1], "last") if len(files) >= 2 else None


@dataclass(frozen=True)
class Transitions:
    """A run's transition matrix at its init and at the checkpoint a table reports."""

    names: list[str]  #: tag names, rows "from", columns "to"
    init: list[list[float]]
    last: list[list[float]]
    of: str  #: "best" (the best checkpoint's) or "last" (a run older than transitions/best.csv)

    @property
    def moved(self) -> float:
        """max |last - init| over the cells."""
        return max(abs(a - b) for ra, rb in zip(self.init, self.last) for a, b in zip(ra, rb))


def learned_transitions(run_dir: str | os.PathLike) -> Transitions | None:
    """The run's :class:`Transitions` (:func:`reported_transitions` against the first saved
    matrix); None for a run that saved none after its init."""
    files, reported = transition_files(run_dir), reported_transitions(run_dir)
    if not files or reported is None:
        return None
    names, init = read_matrix(files[0])
    _, last = read_matrix(reported[0])
    return Transitions(names, init, last, reported[1])


# ---------------------------------------------------------------------------------------- tag moves
def _parse(name: str) -> tuple[str, str]:
    """``(prefix, type)``: CWS tags ``s b m e`` are BMES with one unnamed type; NER tags are
    ``O`` or ``P-TYPE``."""
    if name == "O":
        return "O", ""
    if name in ("s", "b", "m", "e"):
        return name.upper(), ""
    if len(name) >= 3 and name[1] == "-" and name[0] in "BIMES":
        return name[0], name[2:]
    raise ValueError(f"{name!r} is not a tag of a BMES / BIO scheme (s b m e, O, or P-TYPE)")


def impossible_moves(names: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(from, to)`` tag pairs no valid tagging contains: in BMES (CWS's ``s b m e`` or
    NER's ``B-X M-X E-X S-X``) after B or M only M or E of the same type, and M / E only after
    B or M of the same type; in BIO, I-X only after B-X or I-X. For CWS these are the 8 moves
    s->m, s->e, b->s, b->b, m->s, m->b, e->m, e->e."""
    parsed = [_parse(n) for n in names]
    bmes = any(p in ("M", "E", "S") for p, _ in parsed)
    out = []
    for a, pa in zip(names, parsed):
        for b, pb in zip(names, parsed):
            if bmes:
                inside = pa[0] in ("B", "M")
                ok = (pb[0] in ("M", "E") and pb[1] == pa[1]) if inside else pb[0] not in ("M", "E")
            else:
                ok = pb[0] != "I" or (pa[0] in ("B", "I") and pa[1] == pb[1])
            if not ok:
                out.append((a, b))
    return out


def count_negative(names: Sequence[str], matrix: Sequence[Sequence[float]], moves: Sequence[tuple[str, str]]) -> int:
    """How many of ``moves`` score below zero in ``matrix`` (a learned CRF / MEMM matrix should
    make every impossible move negative)."""
    index = {n: i for i, n in enumerate(names)}
    return sum(matrix[index[a]][index[b]] < 0 for a, b in moves)


# ---------------------------------------------------------------------------------------- formatting
def num(x: Any, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals; "-" for None, NaN, a bool or anything not a number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def esc(text: Any) -> str:
    """Text safe inside one markdown table cell (``|`` escaped, newlines as spaces)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_table(path: str | os.PathLike, text: str) -> None:
    """Write a report atomically (a half-written one never replaces a finished one), creating
    its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(str(path), text)
