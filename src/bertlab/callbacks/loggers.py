"""Loggers whose history survives a resume and a SLURM requeue (docs/reliability.md).

Lightning's ``CSVLogger`` deletes ``csv/metrics.csv`` when it starts in a folder that has
one (its experiment writer removes an existing metrics file), so a resumed run kept only
the validations after the resume, and ``bertlab.report``'s best-over-history was wrong.
Here the history is appended instead, and cut back to what the resumed checkpoint had:

* :class:`ResumableCSVLogger` keeps an existing ``metrics.csv`` and writes every row to
  disk when it is logged (appended; the whole file is rewritten atomically only when new
  columns appear, or when the history is cut back), so no row logged before a kill is
  lost in a buffer. A partial last line left by a writer killed mid-row is dropped when
  the file is opened again.
* :class:`ResumableTensorBoardLogger` continues in the same folder and hides the events
  of the steps that are logged again (SummaryWriter's ``purge_step``).
* :class:`ResumeHistory` (a callback, ``conf/callbacks/default.yaml``) tells them where
  the fit starts: at ``on_train_start`` ``trainer.global_step`` is the restored
  checkpoint's step ``N`` (0 for a fresh start), whatever chose the checkpoint
  (``ckpt_path=last``, a file, Lightning's ``hpc_ckpt_*`` after a SLURM requeue).

Which rows are logged again: Lightning logs the metrics of optimizer step ``k`` (the
training row, and a validation run after it) with ``step = k - 1``, and a fit resumed from
a checkpoint of global step ``N`` logs its first row with ``step = N``. So the rows with
``step < N`` are kept and the rows with ``step >= N`` are dropped: the history of a
resumed run equals the uninterrupted run's, row for row
(``tests/test_history_resume.py``). A fresh start in a folder that has a history
(``ckpt_path=last`` before the first checkpoint was written) starts it afresh (N = 0).
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
from typing import Any, cast

import pytorch_lightning as pl
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from bertlab.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["ResumableCSVLogger", "ResumableTensorBoardLogger", "ResumeHistory", "read_history", "cut_history"]


def _row_step(row: dict[str, str]) -> float | None:
    try:
        return float(row.get("step") or "")
    except ValueError:
        return None


def read_history(path: str) -> tuple[list[str], list[dict[str, str]], bool]:
    """(header, rows as strings, whether a partial last line was dropped) of a metrics.csv."""
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    partial = bool(text) and not text.endswith("\n")
    if partial:  # a writer killed in the middle of a row: that row never completed
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows, partial


def _csv_text(header: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def cut_history(header: list[str], rows: list[dict[str, str]], step: int) -> tuple[list[str], list[dict[str, str]]]:
    """The rows logged before global step ``step`` (their ``step`` < ``step``; a row without
    a step is kept) and the columns that still hold a value, in Lightning's order (sorted)."""
    kept = [r for r in rows if (s := _row_step(r)) is None or s < step]
    used = {k for r in kept for k, v in r.items() if v not in (None, "")}
    cols = sorted(k for k in header if k in used or k == "step")
    return cols, [{k: r.get(k, "") for k in cols} for r in kept]


class ResumableExperimentWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, but an existing ``metrics.csv`` is continued, not
    deleted, and each row reaches the file as soon as it is logged (see the module doc)."""

    metrics: list[dict[str, Any]]  # Lightning's ExperimentWriter: the rows not yet on disk
    metrics_keys: list[str]

    def _check_log_dir_exists(self) -> None:  # called by __init__; Lightning's deletes the file
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return
        header, rows, partial = read_history(path)
        if partial:
            log.warning("%s: dropped a partial last row (a writer was killed while writing it)", path)
            atomic_write_text(path, _csv_text(header, rows))
        self.metrics_keys = list(header)

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics_dict, step)
        self.save()

    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        path = self.metrics_file_path
        if new_keys or not os.path.isfile(path):
            # a new header: the whole file, atomically (this is when Lightning rewrites it too)
            old = read_history(path)[1] if os.path.isfile(path) else []
            atomic_write_text(path, _csv_text(self.metrics_keys, old + self.metrics))
        else:
            with open(path, "a", encoding="utf-8", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.metrics_keys).writerows(self.metrics)
        self.metrics = []

    def cut_to(self, step: int) -> tuple[int, int]:
        """Keep the rows logged before global step ``step``; returns (kept, dropped)."""
        self.save()
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return 0, 0
        header, rows, _ = read_history(path)
        cols, kept = cut_history(header, rows, step)
        if len(kept) < len(rows) or cols != header:
            atomic_write_text(path, _csv_text(cols, kept))
        self.metrics_keys = cols
        return len(kept), len(rows) - len(kept)


class ResumableCSVLogger(CSVLogger):
    """``pytorch_lightning.loggers.CSVLogger`` whose ``metrics.csv`` survives a resume."""

    _experiment: ResumableExperimentWriter | None  # Lightning's CSVLogger: opened on first use

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumableExperimentWriter:
        if self._experiment is not None:
            return cast(ResumableExperimentWriter, self._experiment)  # set only here
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = ResumableExperimentWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def resume_history(self, step: int) -> None:
        kept, dropped = self.experiment.cut_to(step)
        if kept or dropped:
            log.info(
                "%s: history continued at step %d: kept %d rows, dropped %d logged after the checkpoint",
                self.experiment.metrics_file_path,
                step,
                kept,
                dropped,
            )


class ResumableTensorBoardLogger(TensorBoardLogger):
    """``TensorBoardLogger`` that continues its folder: a fit resumed at global step ``N``
    opens its writer with ``purge_step=N``, so TensorBoard hides the earlier events of the
    steps >= N (they are logged again)."""

    _experiment: Any  # Lightning's TensorBoardLogger: its SummaryWriter, opened on first use

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # the event files of earlier processes (this one's are written later)
        self._earlier_events = glob.glob(os.path.join(self.log_dir, "events.out.tfevents.*"))

    @rank_zero_only
    def resume_history(self, step: int) -> None:
        if not self._earlier_events:
            return
        if self._experiment is not None:  # opened before the fit (hyperparameters): reopen
            self._experiment.flush()
            self._experiment.close()
            self._experiment = None
        self._kwargs["purge_step"] = int(step)
        log.info("%s: TensorBoard history continued at step %d (later events purged)", self.log_dir, step)


class ResumeHistory(Callback):
    """At the start of every fit, tells each logger with a ``resume_history(step)`` method
    the global step the fit starts from (the restored checkpoint's, 0 when fresh)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            resume = getattr(logger, "resume_history", None)
            if callable(resume):
                resume(int(trainer.global_step))
