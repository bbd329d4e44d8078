"""Validation/test shared by the tasks: predictions collected per sample index, split
across DDP processes without duplicates, gathered, scored ONCE on the whole set.

A task mixes :class:`EvalCollector` in (``class M(EvalCollector, BertlabTask)``) and
implements :meth:`EvalCollector.eval_predictions` (a batch -> ``{sample index: prediction}``)
and :meth:`EvalCollector.eval_score` (the predictions of the whole split -> ``(metrics,
outputs)``: the DataModule decodes them, bertlab.metrics scores them). The mixin owns ``on_{validation,test}_epoch_start``,
``{validation,test}_step`` and ``on_{validation,test}_epoch_end``; ``predict_step`` stays
the task's (a plain per-batch function, also used outside a Trainer).

Under DDP (``trainer=ddp_cpu`` / ``trainer=ddp``)
------------------------------------------------
* Every rank iterates the SAME evaluation loader (the DDP configs keep
  ``use_distributed_sampler: false``: training is sharded by the batch samplers themselves,
  evaluation samplers never are, and a ``DistributedSampler`` evens out shards by
  evaluating some samples twice). Rank ``r`` of ``W`` computes only batches ``r, r+W, ...``
  (:meth:`EvalCollector.owns_eval_batch`); the others return at once. No sample is
  evaluated twice, no sample is missed, and every rank still calls the step (and DDP's
  forward hooks) equally often.
* At epoch end the ranks' ``{index: prediction}`` dicts are gathered to every rank
  (``all_gather_object``) and merged by index (were a loader ever sharded by a padding
  ``DistributedSampler``, a duplicated sample would count once), and every rank scores the
  whole set: P/R/F1 come from the counts of the whole set (= the sums of the ranks' counts),
  never from a mean of per-rank F1s. The metrics are identical on every rank and to a
  1-process run, so they are logged without ``sync_dist`` (Lightning's "recommended to use
  sync_dist=True" hint does not apply) and ``ModelCheckpoint`` sees them on every rank.
* Timing metrics (``decode_seconds``, ``texts_per_s``) take the slowest rank.

Tables
------
When a W&B logger is attached, rank 0 sends a sample of the split's predictions as a table
(``<split>/predictions``: :meth:`EvalCollector.eval_table`, at most
:data:`TABLE_ROWS` rows) through :func:`bertlab.utils.logging_tables.log_table` (which also
writes it to the TensorBoard/CSV loggers present).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bertlab.utils.distributed import gather_objects, merge_by_index, rank_and_world

log = logging.getLogger(__name__)

#: rows of a prediction table sent to W&B per evaluation (the first N samples, corpus order)
TABLE_ROWS = 50

SPLITS = {"validation": "val", "test": "test"}


def loader_is_sharded(loaders: Any) -> bool:
    """Whether an evaluation loader (or any of a list) already gives each rank its own part
    (a ``DistributedSampler``, e.g. ``use_distributed_sampler: true`` with a plain loader)."""
    from torch.utils.data import DistributedSampler

    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        batch_sampler = getattr(loader, "batch_sampler", None)
        for s in (getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
            if isinstance(s, DistributedSampler):
                return True
    return False


class EvalSharding:
    """Mixin: this rank's share of an evaluation's batches (``batch_idx % W == rank``). For a
    task whose evaluation is sums of counts (MLM loss/accuracy) rather than per-sample
    predictions: call :meth:`start_eval_shard` at epoch start, skip the batches that
    :meth:`owns_eval_batch` refuses, and add the ranks' sums with
    :func:`bertlab.utils.distributed.sum_across_ranks` at epoch end."""

    def _eval_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_bertlab_eval")
        if state is None:
            state = self.__dict__["_bertlab_eval"] = {}
        return state

    def start_eval_shard(self, loaders: Any = None) -> tuple[int, int]:
        """Fix (rank, ranks sharing the batches) for the evaluation that starts now."""
        rank, world = rank_and_world()
        if world > 1 and loader_is_sharded(loaders):
            rank, world = 0, 1  # each rank has its own samples already: evaluate them all
        self._eval_state()["shard"] = (rank, world)
        return rank, world

    def owns_eval_batch(self, batch_idx: int) -> bool:
        """Whether this rank evaluates batch ``batch_idx`` of the running evaluation."""
        rank, world = self._eval_state().get("shard", (0, 1))
        return batch_idx % world == rank


class EvalCollector(EvalSharding):
    """Mixin for a LightningModule: see the module docstring."""

    @property
    def eval_prog_bar(self) -> str | None:
        """The metric shown in the progress bar (logged too): the task's monitor metric
        (:attr:`bertlab.tasks.base.BertlabTask.monitor`) without its split."""
        monitor = str(getattr(self, "monitor", "") or "")
        return monitor.split("/", 1)[-1] or None

    #: float metrics whose name starts with one of these stay in metrics.json only
    eval_hidden_prefixes: tuple[str, ...] = ("n_",)

    # ---------------------------------------------------------------- task hooks
    def eval_predictions(self, batch: Mapping[str, Any]) -> Mapping[int, Any]:
        """``{sample index: prediction}`` of one evaluation batch."""
        raise NotImplementedError

    def eval_score(self, split: str, predictions: Mapping[int, Any]) -> tuple[dict[str, Any], Any]:
        """(metrics, outputs) of the whole split from ``{sample index: prediction}``."""
        raise NotImplementedError

    def eval_extra_metrics(
        self, split: str, predictions: Mapping[int, Any], step_seconds: float, wall_seconds: float
    ) -> dict[str, Any]:
        """Metrics beyond :meth:`eval_score` (e.g. throughput). ``step_seconds``: time in
        the evaluation steps, ``wall_seconds``: epoch start to end, both of the slowest rank."""
        return {}

    def on_eval_scored(self, split: str, metrics: dict[str, Any], outputs: Any) -> None:
        """Called on every rank after ``split`` was scored and logged."""

    def eval_table(self, split: str, outputs: Any) -> tuple[Sequence[str], list[list[Any]]] | None:
        """(columns, rows) of the prediction table sent to W&B; None: no table."""
        return None

    # ---------------------------------------------------------------- collection
    def _eval_start(self, split: str, loaders: Any = None) -> None:
        self.start_eval_shard(loaders)
        self._eval_state()[split] = _new_run()

    def _eval_step(self, split: str, batch: Mapping[str, Any], batch_idx: int) -> None:
        if not self.owns_eval_batch(batch_idx):
            return
        run = self._eval_state().setdefault(split, _new_run())
        t0 = time.perf_counter()
        run["preds"].update(self.eval_predictions(batch))
        run["step_seconds"] += time.perf_counter() - t0
        run["batches"] += 1

    def _eval_gather(self, split: str) -> tuple[dict[int, Any], float, float]:
        """(merged predictions of all ranks, step seconds, wall seconds of the slowest rank)."""
        run = self._eval_state().pop(split, None) or _new_run()
        wall = time.perf_counter() - run["t0"]
        parts = gather_objects((run["preds"], run["step_seconds"], wall))
        preds = merge_by_index([p for p, _, _ in parts])
        if len(parts) > 1:
            rank, world = rank_and_world()
            log.info(
                "%s: rank %d of %d evaluated %d batches (%d samples); %d samples from all ranks",
                split,
                rank,
                world,
                run["batches"],
                len(run["preds"]),
                len(preds),
            )
        return preds, max(s for _, s, _ in parts), max(w for _, _, w in parts)

    def _eval_end(self, split: str) -> None:
        preds, step_seconds, wall_seconds = self._eval_gather(split)  # every rank, always: a collective
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None or not preds:
            return
        metrics, outputs = self.eval_score(split, preds)
        metrics.update(self.eval_extra_metrics(split, preds, step_seconds, wall_seconds))
        self.last_metrics[split] = metrics
        self.last_outputs[split] = outputs
        self._log_eval_metrics(split, metrics)
        self._log_eval_table(split, outputs)
        self.on_eval_scored(split, metrics, outputs)

    def evaluate_now(self, split: str, loader: Any) -> dict[str, Any]:
        """Score ``split`` from ``loader`` outside the Trainer's loops (e.g. the test split after
        every training epoch, :class:`bertlab.callbacks.epoch_test.TestEveryEpoch`): the same
        predictions, DDP sharding and scoring as a test run, in eval mode without gradients,
        and nothing logged or kept (the caller decides). Every rank must call it (a collective)."""
        import torch
        from pytorch_lightning.utilities import move_data_to_device

        key = f"{split}@now"
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                self._eval_start(key, loader)
                for i, batch in enumerate(loader):
                    self._eval_step(key, move_data_to_device(batch, self.device), i)
                preds, _, _ = self._eval_gather(key)
        finally:
            self.train(was_training)
        return self.eval_score(split, preds)[0] if preds else {}

    def _log_eval_metrics(self, split: str, metrics: Mapping[str, Any]) -> None:
        scalars = {
            f"{split}/{k}": float(v)
            for k, v in metrics.items()
            if isinstance(v, float) and not k.startswith(self.eval_hidden_prefixes)
        }
        shown = scalars.pop(f"{split}/{self.eval_prog_bar}", None) if self.eval_prog_bar else None
        if shown is None and self.eval_prog_bar and isinstance(metrics.get(self.eval_prog_bar), (int, float)):
            shown = float(metrics[self.eval_prog_bar])
        if scalars:
            self.log_dict(scalars)
        if shown is not None:
            self.log(f"{split}/{self.eval_prog_bar}", shown, prog_bar=True)

    def _log_eval_table(self, split: str, outputs: Any) -> None:
        trainer = self.trainer
        if trainer.sanity_checking or not trainer.is_global_zero or not has_wandb_logger(trainer):
            return
        table = self.eval_table(split, outputs)
        if table is None:
            return
        from bertlab.utils.logging_tables import log_table

        columns, rows = table
        log_table(trainer, f"{split}/predictions", columns, rows[:TABLE_ROWS])

    # ---------------------------------------------------------------- Lightning hooks
    def on_validation_epoch_start(self) -> None:
        self._eval_start("val", self.trainer.val_dataloaders)

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._eval_step("val", batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start("test", self.trainer.test_dataloaders)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._eval_step("test", batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")


def _new_run() -> dict[str, Any]:
    return {"preds": {}, "step_seconds": 0.0, "batches": 0, "t0": time.perf_counter()}


def has_wandb_logger(trainer: Any) -> bool:
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(lg, WandbLogger) for lg in trainer.loggers)


# ------------------------------------------------------------------------------- tables
def join_words(words: Sequence[str]) -> str:
    return "  ".join(words)  # the SIGHAN format: two spaces between words


def entity_cell(entities: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{e['type']}:{e['text']}@{e['start']}" for e in entities)


def triple_cell(triples: Sequence[Any]) -> str:
    """Triples as ``(subject, predicate, object)``; dicts (predictions) or tuples (gold)."""
    out = []
    for t in triples:
        s, p, o = (t["subject"], t["predicate"], t["object"]) if isinstance(t, Mapping) else tuple(t)[:3]
        out.append(f"({s}, {p}, {o})")
    return "; ".join(out)
