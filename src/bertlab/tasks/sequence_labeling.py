"""Sequence labeling (CWS, NER): encoder -> Dense(num_tags) emissions -> CRF or softmax head.

Thin: the encoder comes from nn/encoders.py, the head from nn/heads.py, the optimizer and
its lr multipliers from optim.py; the DataModule turns predicted tags into task output and
metrics (``datamodule.score``), so this module never needs to know what the tags mean.
Validation/test (also under DDP) run through :class:`bertlab.tasks.evaluation.EvalCollector`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bertlab.nn.heads import build_tagging_head
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector, entity_cell, join_words


class SequenceLabelingModule(EvalCollector, BertlabTask):
    def __init__(
        self,
        encoder: Mapping[str, Any],
        head: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        num_tags: int = 4,
        force_first_tag: int | None = 0,
        force_last_tag: int | None = 0,
        dropout: float = 0.1,
        vocab_keep_ids: list[int] | None = None,
    ):
        super().__init__(
            encoder=encoder,
            head=head,
            optimizer=optimizer,
            scheduler=scheduler,
            num_tags=num_tags,
            force_first_tag=force_first_tag,
            force_last_tag=force_last_tag,
            dropout=dropout,
            vocab_keep_ids=vocab_keep_ids,
        )
        self.encoder, _ = self.build_encoder()
        self.dropout = nn.Dropout(dropout)
        self.emission = nn.Linear(self.encoder.config.hidden_size, num_tags)
        self.head_name, head_module = build_tagging_head(self.hparams.head, num_tags)
        self.add_module(self.head_name, head_module)

    @property
    def head(self) -> nn.Module:
        return getattr(self, self.head_name)

    def emissions(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()
        ).last_hidden_state
        return self.emission(self.dropout(hidden))  # shape: [B, T, K]

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.head.nll(self.emissions(batch), batch["labels"], batch["attention_mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss

    # --------------------------------------------------------------- evaluation
    def _predict(self, batch: Mapping[str, torch.Tensor]) -> list[list[int]]:
        mask = batch["attention_mask"]
        tags = self.head.decode(self.emissions(batch), mask, self.hparams.force_first_tag, self.hparams.force_last_tag)
        return [t[m].tolist() for t, m in zip(tags, mask)]

    def eval_predictions(self, batch: Mapping[str, torch.Tensor]) -> dict[int, list[int]]:
        """Feature index -> per-token tags (validation/test through :class:`EvalCollector`)."""
        return dict(zip(batch["index"].tolist(), self._predict(batch)))

    def predict_step(self, batch, batch_idx=0):
        return self.eval_predictions(batch)

    def eval_table(self, split: str, outputs: list[Any]):
        """CWS: text, gold and predicted words; NER: text, gold and predicted entities."""
        dm = self.trainer.datamodule
        texts, gold = dm.texts[split], dm.gold[split]
        if hasattr(dm, "scheme"):  # NER: outputs are entity lists, gold the tag strings
            from bertlab.metrics.entities import entities_from_tags

            rows = []
            for text, g, pred in zip(texts, gold, outputs):
                g_cell, p_cell = entity_cell(entities_from_tags(text, g, dm.scheme)), entity_cell(pred)
                rows.append([text, g_cell, p_cell, g_cell == p_cell])
            return ["text", "gold", "pred", "exact"], rows
        return ["text", "gold", "pred", "exact"], [
            [text, join_words(g), join_words(p), list(g) == list(p)] for text, g, p in zip(texts, gold, outputs)
        ]
