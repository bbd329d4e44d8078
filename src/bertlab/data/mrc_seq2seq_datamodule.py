"""DataModule for the UniLM seq2seq reader (post 6's comparison model): the MLM reader's data
path (:class:`~bertlab.data.mrc_datamodule.MrcDataModule`: CMRC windows or the WebQA/SogouQA
format, the same answer rules, the same whole-question evaluation batches, voting and
scoring), with the seq2seq layout instead of the [MASK] slots::

    source: [CLS] question (<= max_question_len) [SEP] passage (<= max_passage_len) [SEP]
    target: answer tokens (<= max_answer_len - 1), then [SEP] (predicted, never input)

``source_order: passage_first`` puts the passage first, ``[CLS] passage [SEP] question [SEP]``,
as post 6's seq2seq example does (its joint decoder, ``model.decoding: joint``, needs a model
trained so); the default ``question_first`` keeps the layout older checkpoints were trained
with. Training, evaluation and prediction rows all come from :meth:`build_feature`, so a
model is always decoded with the order it was trained with (``model_kwargs`` tells the model).

A training row is ``source + answer`` (right-padded); ``labels[i]`` is the token to predict
FROM position i: -100 on the source except its last [SEP] (which predicts the first answer
token), the next answer token on the answer, [SEP] after the last one; the empty answer
("no answer in this passage") is just [SEP] predicted from the source's last [SEP].
``source_len`` gives each row's source length (the UniLM mask and the segment ids start the
target there). Evaluation rows are the sources only; the model generates the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from bertlab.data.mrc_datamodule import IGNORE, EncodedPassage, MrcDataModule
from bertlab.utils.errors import ConfigError

SOURCE_ORDERS = ("question_first", "passage_first")


class MrcSeq2SeqDataModule(MrcDataModule):
    def __init__(self, *args: Any, source_order: str = "question_first", **kwargs: Any):
        if source_order not in SOURCE_ORDERS:
            raise ConfigError("data.source_order", f"must be one of {list(SOURCE_ORDERS)}, got {source_order!r}")
        super().__init__(*args, **kwargs)
        self.source_order = source_order

    def build_feature(self, q_ids: list[int], p: EncodedPassage, with_target: bool, index: int) -> dict[str, Any]:
        assert self.tokenizer is not None
        cls, sep = self.tokenizer.cls_id, self.tokenizer.sep_id
        first, second = (p.ids, q_ids) if self.source_order == "passage_first" else (q_ids, p.ids)
        source = [cls] + first + [sep] + second + [sep]
        feat: dict[str, Any] = {"input_ids": source, "source_len": len(source), "index": index, "passage": p.ids}
        if with_target:
            feat["input_ids"] = source + p.answer_ids
            feat["labels"] = [IGNORE] * (len(source) - 1) + p.answer_ids + [sep]
        return feat

    def _eval_features(self, encoded: Sequence[Any]) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
        refs, feats = super()._eval_features(list(encoded))
        for (qi, _), f in zip(refs, feats):
            f["question"] = qi  # the joint decoder decodes a question's passages together
        return refs, feats

    def collate(self, feats: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = super().collate([{k: v for k, v in f.items() if k not in ("labels", "question")} for f in feats])
        batch["source_len"] = torch.as_tensor([f["source_len"] for f in feats], dtype=torch.long)
        if "question" in feats[0]:
            batch["question"] = torch.as_tensor([f["question"] for f in feats], dtype=torch.long)
        if "labels" in feats[0]:
            labels = torch.full(batch["input_ids"].shape, IGNORE, dtype=torch.long)
            for i, f in enumerate(feats):
                labels[i, : len(f["labels"])] = torch.as_tensor(f["labels"])
            batch["labels"] = labels
        return batch

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = super().model_kwargs()
        assert self.tokenizer is not None
        tok = self.tokenizer
        kwargs["special_ids"] = {"pad": tok.pad_id, "unk": tok.unk_id, "cls": tok.cls_id, "mask": self.mask_id}
        kwargs["source_order"] = self.source_order
        return kwargs
