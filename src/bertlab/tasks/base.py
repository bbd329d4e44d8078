"""The base of every task (a LightningModule built by ``bertlab.train`` from ``conf/model/*``).

:class:`BertlabTask` holds what every task does the same way:

* its constructor arguments become plain hyperparameters (OmegaConf containers turned into
  dicts/lists, :func:`bertlab.utils.config.to_plain`) saved with ``save_hyperparameters``, so
  a checkpoint holds plain data only and ``load_from_checkpoint`` rebuilds the task;
* :meth:`BertlabTask.build_encoder` builds the encoder (and, on request, its MLM head) from
  ``hparams.encoder`` with the vocabulary ids the DataModule kept (``hparams.vocab_keep_ids``,
  from :meth:`bertlab.data.base.CharDataModule.model_kwargs`);
* ``last_metrics`` / ``last_outputs``: ``{split: metrics}`` and ``{split: outputs}`` of the
  latest evaluation, which ``bertlab.train`` writes to metrics.json and the predictions folder;
* ``configure_optimizers`` through :func:`bertlab.optim.configure_optimizers` (``optimizer`` /
  ``scheduler`` hyperparameters, lr multipliers by parameter group);
* :meth:`BertlabTask.eval_data`: the DataModule's evaluation data of a split as the typed object
  the task scores (``TaggingEvalData``, ``ReadingEvalData`` ...), its type checked.

Every task declares :attr:`BertlabTask.monitor` (the validation metric that selects the best
checkpoint, that sweeps optimise and that the progress bar shows: ``optimized_metric`` in
conf/train.yaml resolves to it) and :attr:`BertlabTask.monitor_mode` (``max`` or ``min``).

A task subclass keeps only its model, loss, decoding and metric wiring: it calls
``super().__init__(**hparams)`` with every argument it was given (the names are the
hyperparameter names in the checkpoint), then builds its modules. Tasks that score
per-sample predictions mix :class:`bertlab.tasks.evaluation.EvalCollector` in first
(``class MyTask(EvalCollector, BertlabTask)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import pytorch_lightning as pl
from torch import nn

from bertlab.data.base import CharDataModule
from bertlab.nn.encoders import build_encoder
from bertlab.optim import configure_optimizers
from bertlab.utils.config import to_plain

E = TypeVar("E")


class BertlabTask(pl.LightningModule):
    """See the module docstring. ``hparams`` must hold ``encoder``, ``optimizer``, ``scheduler``
    and ``vocab_keep_ids`` (the DataModule's kept ids, None for the full vocabulary)."""

    #: the validation metric that selects the best checkpoint (``<split>/<name>``): every task declares it
    monitor: ClassVar[str] = ""
    #: whether a larger (``max``) or a smaller (``min``) :attr:`monitor` is better
    monitor_mode: ClassVar[str] = "max"

    def __init__(self, **hparams: Any):
        super().__init__()
        self.save_hyperparameters({name: to_plain(value) for name, value in hparams.items()})
        #: split -> metrics of its latest evaluation (metrics.json)
        self.last_metrics: dict[str, dict[str, Any]] = {}
        #: split -> the task's outputs of its latest evaluation (DataModule.save_outputs)
        self.last_outputs: dict[str, Any] = {}

    def build_encoder(self, with_mlm_head: bool = False) -> tuple[nn.Module, nn.Module | None]:
        """(encoder, MLM head or None) from ``hparams.encoder`` over the kept vocabulary ids."""
        return build_encoder(self.hparams.encoder, keep_ids=self.hparams.vocab_keep_ids, with_mlm_head=with_mlm_head)

    def datamodule(self) -> CharDataModule:
        """The Trainer's DataModule (an error without one: evaluation needs its data)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not isinstance(dm, CharDataModule):
            raise RuntimeError(f"{type(self).__name__} evaluates with a bertlab DataModule; the trainer has {dm!r}")
        return dm

    def eval_data(self, split: str, kind: type[E]) -> E:
        """The DataModule's evaluation data of ``split`` (:meth:`CharDataModule.eval_data`), which
        must be a ``kind`` (the task family's dataclass)."""
        dm = self.datamodule()
        data = dm.eval_data(split)
        if not isinstance(data, kind):
            raise TypeError(
                f"{type(self).__name__} scores {kind.__name__}; {type(dm).__name__}.eval_data gives {type(data).__name__}"
            )
        return data

    def decode_predictions(self, datamodule: CharDataModule, split: str, predictions: Mapping[int, Any]) -> list[Any]:
        """One output per input of ``split`` from ``{sample index: prediction}`` (``bertlab.predict``:
        :func:`bertlab.runs.predict_texts`): the DataModule's ``decode``; a task whose outputs need
        more than that (MRC: the vote across a question's passages) overrides it."""
        return datamodule.decode(split, predictions)

    def configure_optimizers(self):
        return configure_optimizers(self)
