"""The toy task's DataModule (step 3): reads with the reader, tokenises one token per character,
batches with the shared resumable loaders, and declares what scoring reads (``ToyEvalData``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from toylab.data.toy import read_toy

from bertlab.data.base import CharDataModule
from bertlab.data.classification_datamodule import classification_collate
from bertlab.data.samplers import BucketedSplitLoaders


@dataclass(frozen=True)
class ToyEvalData:
    split: str
    texts: list[str]
    labels: list[int]
    decode: Callable[[Mapping[int, int]], list[int | None]]


class ToyDataModule(BucketedSplitLoaders, CharDataModule):
    def __init__(
        self,
        data_dir: str,
        vocab_file: str,
        max_len: int = 64,
        batch_size: int = 8,
        eval_batch_size: int = 16,
        pool_batches: int = 10,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "corpus",
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.texts: dict[str, list[str]] = {}
        self.labels: dict[str, list[int]] = {}
        self.features: dict[str, list[dict[str, Any]]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        hp = self.hparams
        rows = {s: read_toy(os.path.join(hp.data_dir, f"{s}.tsv")) for s in ("train", "val", "test")}
        if hp.max_train_chars:  # the debug preset's size limits
            budget = int(hp.max_train_chars)
            rows["train"] = [
                r for i, r in enumerate(rows["train"]) if sum(len(t) for t, _ in rows["train"][: i + 1]) <= budget
            ]
        if hp.max_eval_sentences:
            for s in ("val", "test"):
                rows[s] = rows[s][: int(hp.max_eval_sentences)]
        self.build_tokenizer(ch for text, _ in rows["train"] for ch in text)
        for split, split_rows in rows.items():
            self._store(split, [t for t, _ in split_rows], [y for _, y in split_rows])
        self.stats = {f"{s}_examples": len(r) for s, r in rows.items()}

    def _store(self, split: str, texts: list[str], labels: list[int] | None) -> None:
        assert self.tokenizer is not None
        self.texts[split] = texts
        feats: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            ids = self.tokenizer.encode(text).ids[: self.hparams.max_len]
            feats.append({"input_ids": ids, "index": i, **({"label": labels[i]} if labels is not None else {})})
        if labels is not None:
            self.labels[split] = labels
        self.features[split] = feats

    def collate_fn(self, train: bool) -> Any:
        assert self.tokenizer is not None
        return partial(classification_collate, pad_id=self.tokenizer.pad_id)

    def model_kwargs(self) -> dict[str, Any]:
        return {**super().model_kwargs(), "num_labels": 2}

    def eval_data(self, split: str) -> ToyEvalData:
        return ToyEvalData(split, self.texts[split], self.labels[split], partial(self.decode, split))

    # prediction
    def set_predict_texts(self, texts: Sequence[str]) -> None:
        self.ensure_tokenizer()
        self._store("predict", list(texts), None)

    def decode(self, split: str, predictions: Mapping[int, int]) -> list[int | None]:
        return [predictions.get(i) for i in range(len(self.texts[split]))]

    def format_prediction(self, text: str, label: int | None) -> dict[str, Any]:
        return {"text": text, "label": label}
