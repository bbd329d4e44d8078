"""Everything an interrupted run needs, besides weights/optimizer/schedulers/loops (which
Lightning restores itself), to continue exactly as if it had never stopped.

* **Random numbers per training batch.** With ``step_seed`` (the default) the python,
  numpy and torch generators are re-seeded at the start of every training batch from
  ``(seed, batch number)`` (as fairseq does per update), so dropout masks depend on
  nothing but the seed and the position in training: not on how many random numbers
  validation, a new DataLoader iterator (each draws one seed from torch's generator) or
  a resume consumed in between. A resumed run draws the very same masks.
* **Generator states in the checkpoint.** The python / numpy / torch (and CUDA) states at
  save time are stored under ``checkpoint["bertlab_resume"]["rng"]`` and put back at the
  first training batch after a resume (without ``step_seed`` this is what continues the
  random stream; exact as long as nothing drew random numbers between the save and the
  next training batch of the original run).
* **Data order and position.** The training loaders of bertlab's DataModules are stateful
  (:class:`bertlab.data.samplers.ResumableDataLoader`): Lightning saves their position in
  the checkpoint and restores it, and sets their batch sampler's epoch at every epoch start
  (bertlab.data.samplers, "Resuming"). Lightning applies the saved position only if it
  builds the loader *after* restoring its loops; a ``configure_optimizers`` that asks for
  ``trainer.estimated_stepping_batches`` (warm-up schedules) makes it build the loader
  before, and the position is silently dropped (the resumed epoch restarts at its first
  batch). :meth:`on_train_start` applies the pending position then and restarts the
  loader's iterator, before any batch is drawn. A resume in the middle of an epoch whose
  training loader is not stateful (a plain ``DataLoader``) is refused: it would train on
  other batches than the interrupted run.
* **Checkpoints written at the end of an epoch.** ``ModelCheckpoint`` saves in
  ``on_train_epoch_end`` when validation runs once per epoch, i.e. after Lightning counted
  the epoch *processed* and before it counted it *completed*. With step-bounded training
  (``max_steps`` set) Lightning resumes such a checkpoint as "restarted on epoch end": it
  runs that epoch's end again and counts it processed a second time, so one epoch is lost
  (a resumed 3-epoch run trains 2). :meth:`on_load_checkpoint` marks such an epoch
  completed in the loaded loop state (what Lightning itself does when ``max_steps`` is not
  set), so the run goes on with the next epoch, at its first batch.
* **The last metrics.** The metrics logged so far (``trainer.callback_metrics``) and the
  last validation's results are saved, and put back on resume: a run resumed after its
  last validation trains nothing more and still reports what the uninterrupted run does.
"""

from __future__ import annotations

import logging
import random
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch

from bertlab.data.samplers import log_global_batch

log = logging.getLogger(__name__)

CKPT_KEY = "bertlab_resume"


def batch_seed(seed: int, batch_number: int) -> int:
    """A 32-bit seed for training batch ``batch_number`` of a run seeded with ``seed``
    (SeedSequence mixing: seeds s and s+1 do not give shifted copies of one stream)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(batch_number)]).generate_state(1)[0])


def get_rng_state() -> dict[str, Any]:
    np_state = cast(tuple[Any, ...], np.random.get_state())  # legacy=True (the default): a tuple
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), *npy[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # all devices


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float))


def _plain(obj: Any) -> Any:
    """``obj`` as plain containers of numbers and strings (what a weights_only load allows)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def complete_epoch_end_progress(checkpoint: dict[str, Any]) -> bool:
    """A checkpoint saved in ``on_train_epoch_end`` (the epoch counted processed, not yet
    completed): mark the epoch completed and its batch counters as those of an epoch not
    yet started, so Lightning continues with the next epoch (see the module doc). True if
    the checkpoint was such one."""
    fit = checkpoint.get("loops", {}).get("fit_loop")
    if not fit or "epoch_progress" not in fit:
        return False
    total, current = fit["epoch_progress"]["total"], fit["epoch_progress"]["current"]
    if not (
        total["ready"] == total["started"] == total["processed"] == total["completed"] + 1
        and current["processed"] == current["completed"] + 1
    ):
        return False
    total["completed"], current["completed"] = total["processed"], current["processed"]
    for key, value in fit.items():  # the epoch loop's per-epoch counters start afresh
        if key.startswith("epoch_loop.") and isinstance(value, dict):
            _zero_current(value)
    return True


def _zero_current(state: dict[str, Any]) -> None:
    for key, value in state.items():
        if key == "current" and isinstance(value, dict):
            for k in value:
                value[k] = 0
        elif key == "is_last_batch":
            state[key] = False
        elif isinstance(value, dict):
            _zero_current(value)


def _refuse_mid_epoch_resume_of_a_plain_loader(fit_loop: Any) -> None:
    from bertlab.utils.errors import CheckpointError

    if not fit_loop.restarting or not getattr(fit_loop, "restarted_mid_epoch", False):
        return
    loader = getattr(fit_loop, "_combined_loader", None)
    flat = getattr(loader, "flattened", []) if loader is not None else []
    plain = [type(dl).__name__ for dl in flat if not callable(getattr(dl, "state_dict", None))]
    done = fit_loop.epoch_loop.batch_progress.current.completed
    if plain and 0 < done < fit_loop.max_batches:
        raise CheckpointError(
            f"ckpt_path: the checkpoint was saved in the middle of an epoch (after batch {done}) and the training "
            f"loader ({plain[0]}) cannot restore its position: the resumed run would train on other batches; "
            "return a bertlab.data.samplers.ResumableDataLoader from train_dataloader, or resume from an "
            "end-of-epoch checkpoint"
        )


class ResumeState(pl.Callback):
    """See the module docstring. ``seed``: the run's seed (``${seed}``); ``step_seed``:
    re-seed every training batch (False: continue one random stream, restored on resume)."""

    def __init__(self, seed: int | None = 0, step_seed: bool = True):
        self.seed = 0 if seed is None else int(seed)
        self.step_seed = bool(step_seed)
        self._pending_rng: dict[str, Any] | None = None
        self._restored_metrics: dict[str, float] = {}

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def _put_back_metrics(self, trainer: pl.Trainer) -> None:
        if self._restored_metrics:
            restored = {k: torch.tensor(v) for k, v in self._restored_metrics.items()}
            trainer._logger_connector._callback_metrics.update(restored)
            self._restored_metrics = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._put_back_metrics(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._put_back_metrics(trainer)
        if trainer.is_global_zero:  # data sharded by rank (bertlab.data.samplers): say the global batch
            dm_hp = getattr(getattr(trainer, "datamodule", None), "hparams", None)
            log_global_batch(trainer, getattr(dm_hp, "batch_size", None))
        fit_loop = trainer.fit_loop
        _refuse_mid_epoch_resume_of_a_plain_loader(fit_loop)
        pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
        if not pending or not fit_loop.restarting:
            return
        fetcher = getattr(fit_loop, "_data_fetcher", None)
        load = getattr(fit_loop, "_load_combined_loader_states", None)
        if fetcher is None or load is None:
            log.warning(
                "cannot restore the training data position (unknown Lightning internals): "
                "the resumed epoch restarts at its first batch"
            )
            return
        load()
        iter(fetcher)  # a fresh iterator that starts at the restored position
        log.info("restored the training data position after Lightning had built the loader early")

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        if self.step_seed:
            # the number of this training batch in the whole run (restored with the loops)
            seed_all(batch_seed(self.seed, trainer.fit_loop.total_batch_idx))

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CKPT_KEY] = {
            "rng": get_rng_state(),
            "seed": self.seed,
            "step_seed": self.step_seed,
            "callback_metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)},
            "last_metrics": _plain(getattr(pl_module, "last_metrics", {})),
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        complete_epoch_end_progress(checkpoint)
        saved = checkpoint.get(CKPT_KEY)
        if not saved:
            log.warning(
                "the checkpoint holds no random-number state (not written by bertlab.train?): "
                "the resumed run will not repeat the original one exactly"
            )
            return
        if saved.get("seed") != self.seed or saved.get("step_seed") != self.step_seed:
            log.warning(
                "resuming a run trained with seed=%s step_seed=%s as seed=%s step_seed=%s",
                saved.get("seed"),
                saved.get("step_seed"),
                self.seed,
                self.step_seed,
            )
        self._pending_rng = saved["rng"]
        # the metrics logged before the interruption (newer ones replace them): a run resumed after
        # its last validation trains no more and logs nothing new. Put back at on_fit_start (Lightning
        # resets its metrics after restoring callbacks), or at on_train_start when restored later
        self._restored_metrics = dict(saved.get("callback_metrics") or {})
        last_metrics = getattr(pl_module, "last_metrics", None)  # a task's (EvalCollector) scores by split
        if saved.get("last_metrics") and last_metrics is not None:
            last_metrics.update(saved["last_metrics"])
