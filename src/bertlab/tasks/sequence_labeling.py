"""Sequence labeling (CWS, NER): encoder -> Dense(num_tags) emissions -> CRF or softmax head.

Thin: the encoder comes from nn/encoders.py, the head from nn/heads.py, the optimizer and
its lr multipliers from optim.py; the DataModule's evaluation data
(:class:`bertlab.data.tagging.TaggingEvalData`) turns predicted tags into one tag per
character, then words (CWS) or entities (NER, its ``entity_scheme``), and
:func:`score_tagging` scores them with bertlab.metrics.
Validation/test (also under DDP) run through :class:`bertlab.tasks.evaluation.EvalCollector`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bertlab.data.tagging import TaggingEvalData
from bertlab.metrics.entities import entities_from_tags, entity_scores
from bertlab.metrics.segmentation import segmentation_scores
from bertlab.nn.heads import build_tagging_head
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector, entity_cell, join_words


class SequenceLabelingModule(EvalCollector, BertlabTask):
    monitor = "val/f1"

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
        eval_emissions_only: bool = False,
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
            eval_emissions_only=eval_emissions_only,
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
    @property
    def scores_emissions_only(self) -> bool:
        """Whether evaluation also decodes the emissions alone (argmax per token, no transitions):
        for a head with transitions (CRF, MEMM), ``model.eval_emissions_only`` (off by default; on in
        post 1's CRF experiments, whose :class:`~bertlab.callbacks.crf_mechanism.CRFMechanism` reads it)."""
        return bool(self.hparams.get("eval_emissions_only", False)) and self.head_name != "softmax"

    def _predict(self, batch: Mapping[str, torch.Tensor], emissions_only: bool = False):
        """Per-token tags of the head's decode; with ``emissions_only`` also those of the argmax
        of the emissions (the same forward pass)."""
        mask = batch["attention_mask"]
        em = self.emissions(batch)
        tags = self.head.decode(em, mask, self.hparams.force_first_tag, self.hparams.force_last_tag)
        decoded = [t[m].tolist() for t, m in zip(tags, mask)]
        if not emissions_only:
            return decoded
        return list(zip(decoded, [a[m].tolist() for a, m in zip(em.argmax(-1), mask)]))

    def eval_predictions(self, batch: Mapping[str, torch.Tensor]) -> dict[int, Any]:
        """Feature index -> per-token tags (validation/test through :class:`EvalCollector`), or
        (tags, emissions-only tags) when :attr:`scores_emissions_only`."""
        return dict(zip(batch["index"].tolist(), self._predict(batch, self.scores_emissions_only)))

    def predict_step(self, batch, batch_idx=0):
        return dict(zip(batch["index"].tolist(), self._predict(batch)))

    def eval_score(self, split: str, predictions: Mapping[int, Any]) -> tuple[dict[str, Any], list[Any]]:
        """The head's decode scored as usual; with :attr:`scores_emissions_only` also ``f1_emissions_only``
        (and P/R): what decoding the emissions alone gives, so ``f1 - f1_emissions_only`` is how much
        the transitions add (post 1's mechanism, :class:`bertlab.callbacks.crf_mechanism.CRFMechanism`)."""
        data = self.eval_data(split, TaggingEvalData)
        if not self.scores_emissions_only:
            return score_tagging(data, predictions)
        metrics, outputs = score_tagging(data, {i: p[0] for i, p in predictions.items()})
        alone, _ = score_tagging(data, {i: p[1] for i, p in predictions.items()})
        metrics.update({f"{k}_emissions_only": alone[k] for k in ("precision", "recall", "f1") if k in alone})
        return metrics, outputs

    def eval_table(self, split: str, outputs: list[Any]):
        """CWS: text, gold and predicted words; NER: text, gold and predicted entities."""
        data = self.eval_data(split, TaggingEvalData)
        texts, gold, scheme = data.texts, data.gold, data.entity_scheme
        if scheme is not None:  # NER: outputs are entity lists, gold the tag strings
            rows = []
            for text, g, pred in zip(texts, gold, outputs):
                g_cell, p_cell = entity_cell(entities_from_tags(text, g, scheme)), entity_cell(pred)
                rows.append([text, g_cell, p_cell, g_cell == p_cell])
            return ["text", "gold", "pred", "exact"], rows
        return ["text", "gold", "pred", "exact"], [
            [text, join_words(g), join_words(p), list(g) == list(p)] for text, g, p in zip(texts, gold, outputs)
        ]


def score_tagging(data: TaggingEvalData, predictions: Mapping[int, Sequence[int]]) -> tuple[dict[str, Any], list[Any]]:
    """(metrics, outputs) of a tagging split from per-token tag predictions ``{feature index: tags}``."""
    return score_char_tags(data, data.decode(predictions))


def score_char_tags(data: TaggingEvalData, char_tags: list[list[int | None]]) -> tuple[dict[str, Any], list[Any]]:
    """(metrics, outputs) from one tag per character of every text of the split. CWS (no entity
    scheme): the words and segmentation P/R/F1 (OOV recall against the training word list); NER:
    the entities and entity-level P/R/F1 of the split's scheme."""
    scheme = data.entity_scheme
    if scheme is None:
        words = data.words(char_tags)
        return segmentation_scores(words, data.gold, data.train_words), words
    tags = [data.tag_strings(ct) for ct in char_tags]
    entities = [entities_from_tags(text, t, scheme) for text, t in zip(data.texts, tags)]
    return entity_scores(tags, data.gold, scheme), entities
