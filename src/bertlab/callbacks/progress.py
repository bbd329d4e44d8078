"""Progress for a terminal and for a log file (``conf/callbacks/default.yaml``: ``rich_progress_bar``).

On a terminal, Rich's bar, with the training loss shown as an exponential moving average
(``loss_ema``; a CWS batch loss swings between 4 and 200, unreadable as a number). Without
one (a SLURM ``.out`` file, ``make train | tee log``: ``sys.stdout`` is not a TTY) Rich's bar
prints nothing between the model summary and the test table, so plain lines are printed
instead, flushed at once:

* every 10% of a training epoch (``every``): epoch, batch, global step / total, elapsed,
  ETA, the smoothed loss, optimizer steps per second;
* after every validation: step / total, elapsed, ETA and the validation metrics.

Lightning takes one ``ProgressBar`` callback; :func:`progress_bar` picks the kind
(``mode: auto | rich | plain``). ``callbacks.rich_progress_bar=null`` falls back to
Lightning's default bar as before.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar
from pytorch_lightning.trainer.states import TrainerFn

from bertlab.utils.errors import ConfigError

__all__ = ["LossEMA", "PlainProgressBar", "SmoothedRichProgressBar", "progress_bar", "format_seconds"]

MODES = ("auto", "rich", "plain")
KEY = "callbacks.rich_progress_bar"


class LossEMA:
    """Exponential moving average with bias correction (Adam's): after values x_1..x_t,
    ``value = m_t / (1 - decay**t)`` with ``m_t = decay * m_{t-1} + (1 - decay) * x_t``,
    ``m_0 = 0``, i.e. the mean of the x_i weighted by ``decay**(t - i)``; the first value is
    x_1 itself. Non-finite values (a skipped NaN step) are left out."""

    def __init__(self, decay: float = 0.98):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"{KEY}.ema_decay", f"must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.count = 0
        self._m = 0.0

    def update(self, x: float) -> float | None:
        x = float(x)
        if math.isfinite(x):
            self.count += 1
            self._m = self.decay * self._m + (1.0 - self.decay) * x
        return self.value

    @property
    def value(self) -> float | None:
        if not self.count:
            return None
        return self._m / (1.0 - self.decay**self.count)


def _batch_loss(outputs: Any) -> float | None:
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if loss is None:
        return None
    try:
        return float(loss)
    except (TypeError, ValueError, RuntimeError):
        return None


class _SmoothedLoss:
    """Keeps the EMA of the training loss; ``get_metrics`` shows it in place of the last
    batch's ``train/loss``."""

    loss_key = "train/loss"

    def _init_ema(self, ema_decay: float) -> None:
        self.loss_ema = LossEMA(ema_decay)

    def _update_ema(self, outputs: Any) -> None:
        loss = _batch_loss(outputs)
        if loss is not None:
            self.loss_ema.update(loss)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)  # type: ignore[misc]
        items.pop("v_num", None)
        if self.loss_ema.value is not None:
            items.pop(self.loss_key, None)
            items["loss_ema"] = self.loss_ema.value
        return items


class SmoothedRichProgressBar(_SmoothedLoss, RichProgressBar):
    """Rich's bar with the training loss as an exponential moving average."""

    def __init__(self, ema_decay: float = 0.98, **kwargs: Any):
        super().__init__(**kwargs)
        self._init_ema(ema_decay)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        self._update_ema(outputs)  # before the bar reads the metrics
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def format_seconds(seconds: float | None) -> str:
    """``h:mm:ss`` (``?`` when unknown)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _num(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{v:.4g}" if math.isfinite(v) else str(v)


class PlainProgressBar(_SmoothedLoss, ProgressBar):
    """Plain, flushed lines for logs (no terminal): one every ``every`` of a training epoch
    and one after every validation; see the module docstring."""

    def __init__(self, every: float = 0.1, ema_decay: float = 0.98, stream: Any = None):
        super().__init__()
        if not 0.0 < every <= 1.0:
            raise ConfigError(f"{KEY}.every", f"must be a fraction of an epoch in (0, 1], got {every!r}")
        self._init_ema(ema_decay)
        self.every = every
        self._slices = max(1, round(1.0 / every))  # 0.1: a line at each tenth of the epoch
        self._stream = stream
        self._enabled = True
        self._t0: float | None = None
        self._step0 = 0

    # ProgressBar's contract
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def is_disabled(self) -> bool:
        return not self._enabled

    def print(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("file", self._stream or sys.stdout)
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)

    def _emit(self, line: str) -> None:
        if self._enabled:
            self.print(line)

    # timing
    def _total_steps(self, trainer: pl.Trainer) -> float:
        try:
            return float(trainer.estimated_stepping_batches)
        except Exception:  # noqa: BLE001  (no length known: no total, no ETA)
            return math.inf

    def _clock(self, trainer: pl.Trainer) -> str:
        """``step S/T (p%) | elapsed | ETA`` (the ETA from this process's pace since its start)."""
        step, total = trainer.global_step, self._total_steps(trainer)
        elapsed = time.monotonic() - (self._t0 or time.monotonic())
        done = step - self._step0
        eta = elapsed / done * (total - step) if done > 0 and math.isfinite(total) else None
        if math.isfinite(total) and total > 0:
            where = f"step {step}/{int(total)} ({100.0 * step / total:.0f}%)"
        else:
            where = f"step {step}"
        return f"{where} | elapsed {format_seconds(elapsed)} | ETA {format_seconds(eta)}"

    # hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.monotonic()
        self._step0 = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        self._update_ema(outputs)
        n = self.total_train_batches
        if not (isinstance(n, int) or (isinstance(n, float) and math.isfinite(n))) or n <= 0:
            return
        n, k = int(n), batch_idx + 1
        if k * self._slices // n == (k - 1) * self._slices // n:  # not at a slice's end
            return
        max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        epoch = f"epoch {trainer.current_epoch + 1}" + (f"/{max_epochs}" if max_epochs else "")
        elapsed = time.monotonic() - (self._t0 or time.monotonic())
        pace = (trainer.global_step - self._step0) / elapsed if elapsed > 0 else 0.0
        loss = self.loss_ema.value
        self._emit(
            f"[train] {epoch} {100.0 * k / n:.0f}% ({k}/{n}) | {self._clock(trainer)}"
            + (f" | loss_ema {_num(loss)}" if loss is not None else "")
            + f" | {pace:.2f} steps/s"
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = {
            k: v
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith("val/") and (not hasattr(v, "numel") or v.numel() == 1)
        }
        shown = " ".join(f"{k}={_num(v)}" for k, v in metrics.items())
        self._emit(
            f"[val] epoch {trainer.current_epoch + 1} | {self._clock(trainer)}" + (f" | {shown}" if shown else "")
        )

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = trainer.num_test_batches
        self._emit(f"[test] {sum(batches) if isinstance(batches, list) else batches} batches scored")


def progress_bar(mode: str = "auto", every: float = 0.1, ema_decay: float = 0.98, **rich_kwargs: Any) -> ProgressBar:
    """The progress bar for this process: ``rich`` (SmoothedRichProgressBar) on a terminal,
    ``plain`` (PlainProgressBar) when ``sys.stdout`` is not a TTY (``mode: auto``), or the
    one ``mode`` names. ``rich_kwargs`` go to RichProgressBar (``refresh_rate``, ``leave``)."""
    if mode not in MODES:
        raise ConfigError(f"{KEY}.mode", f"must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        isatty = getattr(sys.stdout, "isatty", None)
        mode = "rich" if callable(isatty) and isatty() else "plain"
    if mode == "rich":
        return SmoothedRichProgressBar(ema_decay=ema_decay, **rich_kwargs)
    return PlainProgressBar(every=every, ema_decay=ema_decay)
