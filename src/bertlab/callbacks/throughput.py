"""Non-padding tokens per second of training (forward + backward + optimizer step), and the
wall clock of every validation (``time/fit_seconds``: seconds since the fit started), so that
time-to-quality (e.g. when val/f1 first reaches 0.84) can be read off the metrics history.

Cost of a run, for comparisons such as post 2's "unsharing costs 10-20% more time": every
training epoch logs ``time/epoch_train_seconds`` (the seconds of its training batches:
forward, backward and optimizer step, without data loading between batches or validation) and
``time/peak_memory_mb`` (the peak resident memory of THIS fit: the peak is reset when the fit
starts, so the jobs of a sequential multirun, which share one process, do not inherit the peak
of the jobs before them; on a GPU the peak memory allocated by torch on the module's device).
Linux resets the peak resident set (``VmHWM``) through ``/proc/self/clear_refs``; where that is
not possible (macOS, a locked-down /proc) the value is ``ru_maxrss``, the process's peak so far,
and the callback says so in the log at the start of the fit."""

from __future__ import annotations

import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)

_PROC = Path("/proc/self")


def _vm_hwm_mb() -> float | None:
    """Linux's peak resident set size since the last reset (``VmHWM`` in /proc/self/status)."""
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_memory_mb(device: torch.device | None = None) -> float:
    """The peak memory in MiB: CUDA's max allocated on ``device`` when it is a GPU, else the
    peak resident set size since :func:`reset_peak_memory` (Linux ``VmHWM``), else the
    process's peak (ru_maxrss: KiB on Linux, bytes on macOS)."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    hwm = _vm_hwm_mb()
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def reset_peak_memory(device: torch.device | None = None) -> bool:
    """Start the peak of :func:`peak_memory_mb` afresh (CUDA's peak stats on a GPU; on Linux
    the resident-set peak, by writing 5 to /proc/self/clear_refs). False where it cannot."""
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    if _vm_hwm_mb() is None:
        return False
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


class TokenThroughput(pl.Callback):
    def __init__(self, mask_key: str = "attention_mask"):
        self.mask_key = mask_key
        self.tokens = 0
        self.padded_tokens = 0
        self.seconds = 0.0
        self._t0: float | None = None
        self._fit_t0: float | None = None
        #: (global step, seconds since the fit started) at the end of every validation
        self.validation_clock: list[tuple[int, float]] = []
        self._epoch_seconds = 0.0
        #: seconds of training batches per finished epoch
        self.epoch_seconds: list[float] = []
        self._fit_offset = 0.0  # fit seconds before a resume (checkpoint state)

    def _fit_elapsed(self) -> float:
        return (time.perf_counter() - self._fit_t0 if self._fit_t0 is not None else 0.0) + self._fit_offset

    def state_dict(self) -> dict[str, Any]:
        """The counts and clocks so far: a resumed run reports the whole run's, not the last part's."""
        return {
            "tokens": self.tokens,
            "padded_tokens": self.padded_tokens,
            "seconds": self.seconds,
            "validation_clock": [list(v) for v in self.validation_clock],
            "epoch_seconds": list(self.epoch_seconds),
            "current_epoch_seconds": self._epoch_seconds,
            "fit_seconds": self._fit_elapsed(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens, self.padded_tokens = int(state["tokens"]), int(state["padded_tokens"])
        self.seconds = float(state["seconds"])
        self.validation_clock = [(int(a), float(b)) for a, b in state.get("validation_clock", [])]
        self.epoch_seconds = [float(x) for x in state.get("epoch_seconds", [])]
        self._epoch_seconds = float(state.get("current_epoch_seconds", 0.0))
        self._fit_offset = float(state.get("fit_seconds", 0.0))

    def on_fit_start(self, trainer, pl_module):
        self._fit_t0 = time.perf_counter()
        if not reset_peak_memory(pl_module.device):
            log.info("time/peak_memory_mb: the peak cannot be reset here, it is the process's peak so far")

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or self._fit_t0 is None or trainer.state.fn != "fit":
            return
        elapsed = self._fit_elapsed()
        self.validation_clock.append((trainer.global_step, elapsed))
        pl_module.log("time/fit_seconds", elapsed, on_step=False, on_epoch=True)

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_seconds = 0.0

    def on_train_epoch_end(self, trainer, pl_module):
        self.epoch_seconds.append(self._epoch_seconds)
        pl_module.log("time/epoch_train_seconds", self._epoch_seconds, on_step=False, on_epoch=True)
        pl_module.log("time/peak_memory_mb", peak_memory_mb(pl_module.device), on_step=False, on_epoch=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._t0 is None:
            return
        seconds = time.perf_counter() - self._t0
        self.seconds += seconds
        self._epoch_seconds += seconds
        mask = batch[self.mask_key]
        self.tokens += int(mask.sum())
        self.padded_tokens += mask.numel()
        self._t0 = None
        if self.seconds > 0:
            pl_module.log("train/tokens_per_s", self.tokens / self.seconds, on_step=True, on_epoch=False)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def padding_fraction(self) -> float:
        return 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0

    def run_metrics(self) -> dict[str, Any]:
        """metrics.json (:class:`bertlab.callbacks.contracts.ReportsRunMetrics`)."""
        return {
            "train_tokens_per_s": self.tokens_per_s,
            "train_padding_fraction": self.padding_fraction,
            "train_epoch_seconds": self.epoch_seconds,
            "validation_clock": [{"step": st, "fit_seconds": sec} for st, sec in self.validation_clock],
        }
