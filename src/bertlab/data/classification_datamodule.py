"""Sentence classification DataModule: the sentiment corpus (data/sentiment/sentiment.zip).

Splits: the corpus's train / valid / test become ``train`` / ``val`` / ``test``. Texts are
tokenized one token per character (:class:`bertlab.data.tokenization.CharTokenizer`), or
into BERT's WordPiece tokens with ``data.tokenizer: wordpiece``, and truncated to ``max_len`` tokens with [CLS] and [SEP] (bert4keras's
``maxlen``). ``max_train_examples`` keeps a FIXED random subset of the training split,
drawn with ``subset_seed`` (not the run's seed), so that every arm and seed of a
comparison trains on the same examples.

Predictions are ``{feature index: label id}``; ``decode``/``format_prediction`` serve
``bertlab.predict`` and any caller that wants labels for raw texts (e.g. a control-accuracy
judge). Scoring is the task's (:func:`bertlab.tasks.classification.score_labels`).

The corpus's evaluation splits share texts with its training split (valid: 666 of 2,111
texts occur verbatim in train, test: 677 of 2,111), so the DataModule keeps ``train_texts``
(every text of the corpus's full training split) for the task's ``acc_unseen``: accuracy over
the examples whose text is NOT in it, the number that says how well a model generalises.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from bertlab.data.base import CharDataModule
from bertlab.data.collate import pad_collate
from bertlab.data.samplers import BucketedSplitLoaders
from bertlab.data.sentiment import read_sentiment
from bertlab.utils.errors import ConfigError, DataError
from bertlab.utils.startup_checks import check_char_budget

log = logging.getLogger(__name__)

#: our split name -> the corpus's
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def classification_collate(features: Sequence[dict[str, Any]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    batch = pad_collate(features, pad_id=pad_id)
    if "label" in features[0]:
        batch["label"] = torch.as_tensor([f["label"] for f in features], dtype=torch.long)
    return batch


@dataclass(frozen=True)
class ClassificationEvalData:
    """What scoring a classification split reads (:meth:`ClassificationDataModule.eval_data`):
    the texts, their gold label ids, the label names, the split's ``decode`` (``{text index:
    label id}`` -> one label id or None per text) and the training texts (``acc_unseen``; None:
    the corpus has no training split)."""

    split: str
    texts: list[str]
    labels: list[int]
    label_names: Sequence[str]
    decode: Callable[[Mapping[int, int]], list[int | None]]
    train_texts: frozenset[str] | None = None


class ClassificationDataModule(BucketedSplitLoaders, CharDataModule):
    def __init__(
        self,
        path: str,
        vocab_file: str,
        label_names: Sequence[str] = ("negative", "positive"),
        max_len: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_train_examples: int | None = None,
        subset_seed: int = 0,
        max_eval_examples: int | None = None,
        pool_batches: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "none",
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        tokenizer: str = "char",
    ):
        """``max_train_chars`` / ``max_eval_sentences``: the size limits of the tagging tasks,
        accepted so the shared ``debug`` presets apply here too (a character budget for the
        training subset; the same as ``max_eval_examples``)."""
        super().__init__()
        if max_len < 3:
            raise ConfigError("data.max_len", f"must be >= 3 (room for [CLS], [SEP] and a character), got {max_len}")
        if len(label_names) < 2:
            raise ConfigError("data.label_names", f"need at least 2 labels, got {list(label_names)}")
        if max_train_examples is not None and int(max_train_examples) < 1:
            raise ConfigError("data.max_train_examples", f"must be >= 1 or null, got {max_train_examples}")
        self.save_hyperparameters(logger=False)
        self.texts: dict[str, list[str]] = {}
        self.labels: dict[str, list[int]] = {}
        self.features: dict[str, list[dict[str, Any]]] = {}
        #: every text of the corpus's training split (None: the corpus has none)
        self.train_texts: frozenset[str] | None = None

    @property
    def label_names(self) -> list[str]:
        return list(self.hparams.label_names)

    # ------------------------------------------------------------------ reading
    def read_split(self, split: str) -> list[tuple[str, int]]:
        rows = read_sentiment(self.hparams.path, SPLIT_FILES[split])
        bad = next((lab for _, lab in rows if not 0 <= lab < len(self.label_names)), None)
        if bad is not None:
            raise ConfigError(
                "data.label_names", f"label {bad} in {self.hparams.path} has no name in {self.label_names}"
            )
        return rows

    @staticmethod
    def subset(rows: list[tuple[str, int]], size: int, seed: int) -> list[tuple[str, int]]:
        """A fixed random subset of ``size`` rows, kept in file order."""
        if size >= len(rows):
            return list(rows)
        keep = sorted(random.Random(seed).sample(range(len(rows)), size))
        return [rows[i] for i in keep]

    @staticmethod
    def char_budget(rows: list[tuple[str, int]], max_chars: int, seed: int) -> list[tuple[str, int]]:
        """A fixed random subset of whole examples with at most ``max_chars`` characters, in file order."""
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        keep, total = [], 0
        for i in order:
            if total + len(rows[i][0]) > max_chars:
                break
            keep.append(i)
            total += len(rows[i][0])
        check_char_budget(len(keep), len(rows), max_chars, len(rows[order[0]][0]) if rows else None)
        return [rows[i] for i in sorted(keep)]

    def setup(self, stage: str | None = None) -> None:
        fitting = stage in (None, "fit")
        if "test" in self.features and (not fitting or "train" in self.features):
            return
        hp = self.hparams
        need_train = fitting or self.trims_vocab
        try:
            train = self.read_split("train")
        except DataError:
            if need_train:
                raise
            train = None  # evaluating a corpus without a training split: acc_unseen is unknown
        self.train_texts = None if train is None else frozenset(t for t, _ in train)
        if not need_train or train is None:  # (None only when it is not needed)
            train = []
        if hp.max_train_examples:
            train = self.subset(train, int(hp.max_train_examples), hp.subset_seed)
        if hp.max_train_chars:
            train = self.char_budget(train, int(hp.max_train_chars), hp.subset_seed)
        self.build_tokenizer(text for text, _ in train)
        splits = {"val": self.read_split("val"), "test": self.read_split("test")}
        if fitting:
            splits = {"train": train, **splits}
        for split, rows in splits.items():
            limit = hp.max_eval_examples or hp.max_eval_sentences
            if split != "train" and limit:
                rows = rows[: int(limit)]
            self._store(split, [t for t, _ in rows], [lab for _, lab in rows])
            self.stats[f"{split}_examples"] = len(rows)
            if split != "train" and self.train_texts is not None:
                self.stats[f"{split}_in_train"] = sum(t in self.train_texts for t, _ in rows)
        if fitting:
            feats = self.features["train"]
            self.stats.update(
                train_tokens=sum(len(f["input_ids"]) for f in feats), train_truncated=sum(f["truncated"] for f in feats)
            )
        self.stats["vocab_size"] = len(self.ensure_tokenizer())
        log.info("classification data: %s", self.stats)

    def _encode(self, text: str, index: int) -> dict[str, Any]:
        assert self.tokenizer is not None
        ids = self.tokenizer.encode(text).ids
        limit = self.hparams.max_len
        truncated = len(ids) > limit
        if truncated:  # keep [CLS] + the first max_len - 2 characters + [SEP]
            ids = ids[: limit - 1] + [self.tokenizer.sep_id]
        return {"input_ids": ids, "index": index, "truncated": truncated}

    def _store(self, split: str, texts: list[str], labels: list[int] | None) -> None:
        self.texts[split] = list(texts)
        feats = [self._encode(t, i) for i, t in enumerate(texts)]
        if labels is not None:
            self.labels[split] = list(labels)
            for f, lab in zip(feats, labels):
                f["label"] = int(lab)
        self.features[split] = feats

    # ------------------------------------------------------------------ loaders
    def collate_fn(self, train: bool) -> Any:
        assert self.tokenizer is not None
        return partial(classification_collate, pad_id=self.tokenizer.pad_id)

    def model_kwargs(self) -> dict[str, Any]:
        """What the model must know about the data (after setup): kept vocab ids, label count."""
        return {**super().model_kwargs(), "num_labels": len(self.label_names)}

    def eval_data(self, split: str) -> ClassificationEvalData:
        """What scoring ``split`` reads (after ``setup``)."""
        return ClassificationEvalData(
            split=split,
            texts=self.texts[split],
            labels=self.labels[split],
            label_names=self.label_names,
            decode=partial(self.decode, split),
            train_texts=self.train_texts,
        )

    # ------------------------------------------------------------------ predictions
    def set_predict_texts(self, texts: Sequence[str]) -> None:
        """Raw texts for ``predict_dataloader`` / ``decode("predict", ...)``."""
        self.ensure_tokenizer()
        self._store("predict", list(texts), None)

    def decode(self, split: str, predictions: Mapping[int, int]) -> list[int | None]:
        """One predicted label id per text of ``split`` (None where there is no prediction)."""
        return [None if predictions.get(i) is None else int(predictions[i]) for i in range(len(self.texts[split]))]

    def format_prediction(self, text: str, label: int | None) -> dict[str, Any]:
        name = None if label is None else self.label_names[label]
        return {"text": text, "label": label, "label_name": name}

    def save_outputs(self, split: str, outputs: list[int | None], out_dir: str) -> list[str]:
        """``text<TAB>predicted<TAB>gold`` per example, in corpus order (the corpus's own format + a column)."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_labels.tsv")
        with open(path, "w", encoding="utf-8") as f:
            for text, p, g in zip(self.texts[split], outputs, self.labels[split]):
                f.write(f"{text}\t{'' if p is None else p}\t{g}\n")
        return [path]
