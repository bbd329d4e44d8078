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
  ``scheduler`` hyperparameters, lr multipliers by parameter group).

A task subclass keeps only its model, loss, decoding and metric wiring: it calls
``super().__init__(**hparams)`` with every argument it was given (the names are the
hyperparameter names in the checkpoint), then builds its modules. Tasks that score
per-sample predictions mix :class:`bertlab.tasks.evaluation.EvalCollector` in first
(``class MyTask(EvalCollector, BertlabTask)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
from torch import nn

from bertlab.nn.encoders import build_encoder
from bertlab.optim import configure_optimizers
from bertlab.utils.config import to_plain


class BertlabTask(pl.LightningModule):
    """See the module docstring. ``hparams`` must hold ``encoder``, ``optimizer``, ``scheduler``
    and ``vocab_keep_ids`` (the DataModule's kept ids, None for the full vocabulary)."""

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

    def decode_predictions(self, datamodule: Any, split: str, predictions: Mapping[int, Any]) -> list[Any]:
        """One output per input of ``split`` from ``{sample index: prediction}`` (``bertlab.predict``:
        :func:`bertlab.runs.predict_texts`): the DataModule's ``decode``; a task whose outputs need
        more than that (MRC: the vote across a question's passages) overrides it."""
        return datamodule.decode(split, predictions)

    def configure_optimizers(self):
        return configure_optimizers(self)
