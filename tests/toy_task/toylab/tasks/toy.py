"""The toy task (step 4): encoder -> the mean-pool head, cross-entropy; scored by accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from toylab.data.toy_datamodule import ToyEvalData
from toylab.nn.mean_pool import MeanPoolHead

from bertlab.metrics.classification import accuracy_scores
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector


class ToyModule(EvalCollector, BertlabTask):
    monitor = "val/acc"

    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        num_labels: int = 2,
        dropout: float = 0.1,
        vocab_keep_ids: list[int] | None = None,
    ):
        super().__init__(
            encoder=encoder,
            optimizer=optimizer,
            scheduler=scheduler,
            num_labels=num_labels,
            dropout=dropout,
            vocab_keep_ids=vocab_keep_ids,
        )
        self.encoder, _ = self.build_encoder()
        self.head = MeanPoolHead(self.encoder.config.hidden_size, num_labels, dropout)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"]
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=mask.long()).last_hidden_state
        return self.head(hidden, mask)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.cross_entropy(self(batch).float(), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss

    def eval_predictions(self, batch: Mapping[str, torch.Tensor]) -> dict[int, int]:
        return dict(zip(batch["index"].tolist(), self(batch).argmax(-1).tolist()))

    def eval_score(self, split: str, predictions: Mapping[int, int]) -> tuple[dict[str, Any], list[int | None]]:
        data = self.eval_data(split, ToyEvalData)
        pred = data.decode(predictions)
        return accuracy_scores(pred, data.labels, data.texts, None), pred

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int = 0) -> dict[int, int]:
        return self.eval_predictions(batch)
