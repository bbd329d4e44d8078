"""Sentence classification: encoder -> [CLS] vector -> dropout -> Dense(num_labels) softmax.

The sentiment example of the ALBERT post (bert4keras: ``Lambda(lambda x: x[:, 0])`` then
``Dense(2, softmax)``, cross-entropy averaged over the batch). Options from config:

- ``encoder.albert_unshared``: one independent block per layer, each a copy of the shared
  ALBERT block (:func:`bertlab.nn.albert.unshare_albert`; a no-op when the encoder factory
  already did it);
- ``init``: an init law (or ``{module pattern: law}``, :mod:`bertlab.nn.init`) for the
  freshly built weights: the classifier always, the whole encoder too when it is not
  loaded from a checkpoint (``encoder.pretrained: null``);
- ``orthogonality``: ``{kind: none|som|soft|biggan, patterns: [...], weight, gamma,
  lambda1, lambda2, max_rows}``, a regulariser on the chosen Linear layers added to the
  loss (:class:`bertlab.nn.orthogonality.OrthogonalityPenalty`), logged as
  ``train/orthogonality``.

Validation/test (also under DDP: :class:`bertlab.tasks.evaluation.EvalCollector`): the
DataModule's evaluation data (:class:`bertlab.data.classification_datamodule.ClassificationEvalData`)
turns predicted label ids into one label per text (its ``decode``),
:func:`score_labels` scores them (:func:`bertlab.metrics.classification.accuracy_scores`).
Besides ``val/acc``, every epoch logs ``train/epoch_seconds`` (training time of the epoch,
validation excluded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bertlab.data.classification_datamodule import ClassificationEvalData
from bertlab.metrics.classification import accuracy_scores
from bertlab.nn.init import apply_init
from bertlab.nn.orthogonality import OrthogonalityPenalty
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector

log = logging.getLogger(__name__)

ORTHOGONALITY_KEYS = ("kind", "patterns", "weight", "gamma", "lambda1", "lambda2", "max_rows", "detach_inputs")


class ClassificationModule(EvalCollector, BertlabTask):
    monitor = "val/acc"

    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        num_labels: int = 2,
        dropout: float = 0.1,
        init: str | Mapping[str, str] | None = None,
        orthogonality: Mapping[str, Any] | None = None,
        vocab_keep_ids: list[int] | None = None,
    ):
        super().__init__(
            encoder=encoder,
            optimizer=optimizer,
            scheduler=scheduler,
            num_labels=num_labels,
            dropout=dropout,
            init=init,
            orthogonality=orthogonality,
            vocab_keep_ids=vocab_keep_ids,
        )
        encoder, init, orthogonality = self.hparams.encoder, self.hparams.init, self.hparams.orthogonality
        self.encoder, _ = self.build_encoder()  # applies encoder.albert_unshared
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.encoder.config.hidden_size, num_labels)
        if init is not None:
            fresh = self if not encoder.get("pretrained") else self.classifier
            apply_init(fresh, init, std=getattr(self.encoder.config, "initializer_range", 0.02))
        orth = dict(orthogonality or {})
        unknown = sorted(set(orth) - set(ORTHOGONALITY_KEYS))
        if unknown:
            from bertlab.utils.errors import ConfigError

            raise ConfigError(f"model.orthogonality.{unknown[0]}", f"unknown key; known: {list(ORTHOGONALITY_KEYS)}")
        self.orthogonality = OrthogonalityPenalty(self, **{"kind": "none", **orth})
        self.history: list[dict[str, float]] = []  # one row per validation: epoch, step, val/acc
        self._epoch_start = 0.0
        self._val_seconds = 0.0
        self._val_start: float | None = None
        self.train()  # from_pretrained returns eval-mode modules: dropout must be on while fitting

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        if self.training:
            self.orthogonality.set_mask(mask)
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=mask.long()).last_hidden_state
        return self.classifier(self.dropout(hidden[:, 0]))  # shape: [B, num_labels]

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        bs = batch["input_ids"].size(0)
        loss = nn.functional.cross_entropy(self(batch).float(), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if self.orthogonality.active:
            penalty = self.orthogonality()
            self.log("train/orthogonality", penalty.detach(), batch_size=bs)
            loss = loss + penalty
        return loss

    # --------------------------------------------------------------- evaluation
    def _predict(self, batch: Mapping[str, torch.Tensor]) -> list[int]:
        return self(batch).argmax(-1).tolist()

    def eval_predictions(self, batch: Mapping[str, torch.Tensor]) -> dict[int, int]:
        """``{feature index: predicted label id}`` (validation/test through :class:`EvalCollector`)."""
        return dict(zip(batch["index"].tolist(), self._predict(batch)))

    def predict_step(self, batch, batch_idx=0):
        return self.eval_predictions(batch)

    def eval_score(self, split: str, predictions: Mapping[int, int]) -> tuple[dict[str, Any], list[int | None]]:
        return score_labels(self.eval_data(split, ClassificationEvalData), predictions)

    def on_eval_scored(self, split: str, metrics: dict[str, Any], outputs: Any) -> None:
        if split == "val" and not self.trainer.sanity_checking:
            self.history.append(
                {"epoch": self.current_epoch, "step": self.global_step, "val/acc": float(metrics["acc"])}
            )

    def eval_table(self, split: str, outputs: list[int | None]):
        data = self.eval_data(split, ClassificationEvalData)
        names = data.label_names
        return ["text", "gold", "pred"], [
            [text, names[g], None if p is None else names[p]]
            for text, g, p in zip(data.texts, data.labels, outputs)
            if p is not None
        ]

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self._val_start is not None:
            self._val_seconds += time.perf_counter() - self._val_start
            self._val_start = None

    # --------------------------------------------------------------- timing
    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        self._val_seconds = 0.0

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start - self._val_seconds
        self.log("train/epoch_seconds", seconds)
        if self.history and self.history[-1]["epoch"] == self.current_epoch:
            self.history[-1]["train/epoch_seconds"] = seconds


def score_labels(
    data: ClassificationEvalData, predictions: Mapping[int, int]
) -> tuple[dict[str, Any], list[int | None]]:
    """(metrics, predicted label per text) of a classification split: accuracy over the examples
    that have a prediction (``acc``), the same over those whose text is not in the training
    split (``acc_unseen``, against ``data.train_texts``)."""
    pred = data.decode(predictions)
    gold = data.labels
    missing = sum(p is None for p in pred)
    if missing:
        log.warning("%s: %d of %d examples have no prediction (a limited eval run?)", data.split, missing, len(gold))
    return accuracy_scores(pred, gold, data.texts, data.train_texts), pred
