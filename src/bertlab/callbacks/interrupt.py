"""SIGTERM and SIGINT stop a training run cleanly: a resumable checkpoint at the next
optimizer-step boundary, status ``interrupted``, a non-zero exit.

Lightning's own SIGTERM handling only notes the signal and stops at the end of the epoch
(after its validation and its checkpoint, possibly many minutes later, and the run then
ended ``failed: SIGTERMException`` with exit status 0); Ctrl-C stopped at once without a
checkpoint. Here the handlers (installed when training starts, on top of Lightning's,
which keep running: DDP launchers still kill their children, SLURM's requeue signal is not
touched) only record the signal; at the end of the current training batch the run writes
``<checkpoints>/last.ckpt`` (the same point every ``every_n_train_steps`` checkpoint is
taken, so ``ckpt_path=last`` resumes it exactly) and raises :class:`RunInterrupted`.
``bertlab.train`` records ``status.json`` ``interrupted`` (signal, step, checkpoint) and
exits with ``128 + signal`` (130 for Ctrl-C, 143 for SIGTERM). A second Ctrl-C stops at
once (``KeyboardInterrupt``). Under DDP the ranks agree (any rank signalled) before saving.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(BaseException):  # noqa: N818  (not an Exception: a multirun must stop, not record and go on)
    """Training stopped on a signal after saving a resumable checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = int(signum), int(step), checkpoint
        name = signal.Signals(self.signum).name
        where = f"resumable checkpoint {checkpoint}" if checkpoint else "no checkpoint"
        super().__init__(f"interrupted by {name} after optimizer step {step}: {where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class GracefulInterrupt(pl.Callback):
    """See the module doc. ``dirpath``: where ``last.ckpt`` goes (the run's checkpoints)."""

    def __init__(self, dirpath: str):
        self.dirpath = dirpath
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._trainer: pl.Trainer | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        first = self.received is None
        self.received = signum
        if first:
            log.warning(
                "received %s: saving a resumable checkpoint after this training step, then stopping",
                signal.Signals(signum).name,
            )
        launcher = getattr(getattr(self._trainer, "strategy", None), "launcher", None)
        if first and launcher is not None and hasattr(launcher, "kill"):
            launcher.kill(signum)  # what Lightning's notifier does for processes it launched

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set in the main thread
        self._trainer = trainer
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handler)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        path = os.path.join(self.dirpath, "last.ckpt")
        trainer.save_checkpoint(path)  # every rank takes part; rank 0 writes (atomically)
        raise RunInterrupted(self.received or signal.SIGTERM, trainer.global_step, path)
