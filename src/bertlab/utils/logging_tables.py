"""One call to send a small table (predictions, samples) to every logger of a trainer:

* W&B: a ``wandb.Table`` under ``key``;
* TensorBoard: a markdown table as text under ``key``;
* CSV: ``<csv log dir>/tables/<key>-step<N>.csv`` (``/`` in the key becomes ``_``).

Rows are sequences of plain values (str, int, float, bool, None); anything else is sent as
its ``str``. Only global rank 0 logs.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def esc(v: Any) -> str:
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def table_file_name(key: str, step: int) -> str:
    return re.sub(r"[^\w.-]+", "_", key) + f"-step{step:07d}.csv"


def log_table(
    trainer: pl.Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int | None = None
) -> list[str]:
    """Log ``rows`` (each as long as ``columns``) to all of ``trainer.loggers``; returns the
    kinds it went to (``wandb``, ``tensorboard``, ``csv``)."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    names = [str(c) for c in columns]
    cells = [[_cell(v) for v in row] for row in rows]
    for i, row in enumerate(cells):
        if len(row) != len(columns):
            raise ValueError(f"log_table({key!r}): row {i} has {len(row)} cells, expected {len(names)}")
    if not trainer.is_global_zero:
        return []
    step = trainer.global_step if step is None else step
    sent = []
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key=key, columns=names, data=cells, step=step)
            sent.append("wandb")
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(key, _markdown(names, cells), global_step=step)
            logger.experiment.flush()
            sent.append("tensorboard")
        elif isinstance(logger, CSVLogger):
            out = os.path.join(logger.log_dir, "tables")
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, table_file_name(key, step)), "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(names)
                w.writerows(cells)
            sent.append("csv")
    return sent
