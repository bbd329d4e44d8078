"""DataModule for Chinese word segmentation: People's Daily 1998 -> SIGHAN-2005 PKU test.

Reading and splitting rules live in :mod:`bertlab.data.cws` (see data/README.md); this module
tokenizes (one token per character, :mod:`bertlab.data.tokenization`), cuts sentences longer
than ``max_len - 2`` characters at punctuation, batches with length buckets and dynamic
padding, and turns per-token tag predictions back into words for scoring, rejoining the
pieces of a cut sentence so every input character and line is kept.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from bertlab.data.collate import pad_collate
from bertlab.data.cws import (
    TAGS,
    load_cws_splits,
    read_raw_lines,
    split_text,
    split_words,
    words_to_tags,
)
from bertlab.data.io import read_word_list
from bertlab.data.samplers import BucketBatchSampler
from bertlab.data.tokenization import CharTokenizer
from bertlab.data.vocab import trim_vocab
from bertlab.metrics.segmentation import segmentation_scores
from bertlab.utils.errors import ConfigError, DataError

log = logging.getLogger(__name__)

S_TAG = 0  # [CLS] and [SEP] carry the "single" tag, as in the posts


@dataclass
class _Piece:
    """A model input: characters [start, start+len(text)) of sentence ``sent``."""

    sent: int
    start: int
    text: str


def words_from_tags(text: str, char_tags: Mapping[int, int]) -> list[str]:
    """Words of ``text`` given a tag per non-space char index; whitespace always separates words."""
    words: list[str] = []
    cur = ""
    for i, ch in enumerate(text):
        if ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
            continue
        tag = char_tags.get(i, S_TAG)
        if cur and tag in (0, 1):  # s or b starts a new word
            words.append(cur)
            cur = ""
        cur += ch
    if cur:
        words.append(cur)
    return words


class CwsDataModule(pl.LightningDataModule):
    tag_names: tuple[str, ...] = TAGS

    def __init__(
        self,
        train_files: Sequence[str],
        test_raw_file: str,
        test_gold_file: str,
        train_words_file: str,
        vocab_file: str,
        max_len: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        val_every: int = 10,
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        pool_batches: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "none",
    ):
        super().__init__()
        if max_len < 3:
            raise ConfigError("data.max_len", f"must be >= 3 (room for [CLS], [SEP] and a character), got {max_len}")
        self.save_hyperparameters(logger=False)
        self.tokenizer: CharTokenizer | None = None
        self.keep_ids: list[int] | None = None
        self.features: dict[str, list[dict[str, Any]]] = {}
        self.pieces: dict[str, list[_Piece]] = {}
        self.texts: dict[str, list[str]] = {}
        self.gold: dict[str, list[list[str]]] = {}
        self.train_words: set[str] = set()
        self.stats: dict[str, int] = {}

    # ------------------------------------------------------------------ reading
    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize. Training features only for fitting; a preset ``keep_ids``
        (from a checkpoint) is used as is instead of being derived from the training data."""
        fitting = stage in (None, "fit")
        if "test" in self.features and (not fitting or "train" in self.features):
            return
        hp = self.hparams
        splits = load_cws_splits(list(hp.train_files), hp.test_gold_file, val_every=hp.val_every)
        self.stats = splits.stats()
        train = splits.train
        if hp.max_train_chars:
            train = self._subset(train, int(hp.max_train_chars), hp.seed)
        if self.keep_ids is None and hp.trim_vocab != "none":
            full = CharTokenizer(hp.vocab_file)
            used = {full.char_id(ch) for words in train for w in words for ch in w}
            self.keep_ids = trim_vocab(full.tokens, hp.trim_vocab, used)
        self.tokenizer = CharTokenizer(hp.vocab_file, keep_ids=self.keep_ids)
        val, test_gold = splits.val, splits.test
        raw = read_raw_lines(hp.test_raw_file)
        if len(raw) != len(test_gold):
            raise DataError(hp.test_raw_file, None, f"{len(raw)} lines but the gold file {hp.test_gold_file} has {len(test_gold)}")
        for i, (line, words) in enumerate(zip(raw, test_gold)):
            if "".join(line.split()) != "".join(words):
                raise DataError(hp.test_raw_file, i + 1, f"text differs from line {i + 1} of {hp.test_gold_file}")
        if hp.max_eval_sentences:
            val, raw, test_gold = val[: hp.max_eval_sentences], raw[: hp.max_eval_sentences], test_gold[: hp.max_eval_sentences]
        self.train_words = read_word_list(hp.train_words_file)

        if fitting:
            self.features["train"] = self._train_features(train)
            self.stats.update(
                train_features=len(self.features["train"]),
                train_tokens=sum(len(f["input_ids"]) for f in self.features["train"]),
                train_unk_tokens=sum(f["input_ids"].count(self.tokenizer.unk_id) for f in self.features["train"]),
            )
        self.texts["val"] = ["".join(w) for w in val]
        self.texts["test"] = raw
        self.gold = {"val": val, "test": test_gold}
        for split in ("val", "test"):
            self.pieces[split], self.features[split] = self._eval_features(self.texts[split])
        self.stats.update(
            val_features=len(self.features["val"]),
            test_features=len(self.features["test"]),
            vocab_size=len(self.tokenizer),
        )
        log.info("CWS data: %s", self.stats)

    @staticmethod
    def _subset(sents: list[list[str]], max_chars: int, seed: int) -> list[list[str]]:
        """A fixed random subset of whole sentences with at most ``max_chars`` characters."""
        order = list(range(len(sents)))
        random.Random(seed).shuffle(order)
        out, total = [], 0
        for i in order:
            n = sum(map(len, sents[i]))
            if total + n > max_chars:
                break
            out.append(i)
            total += n
        return [sents[i] for i in sorted(out)]

    def _train_features(self, sents: list[list[str]]) -> list[dict[str, Any]]:
        assert self.tokenizer is not None
        limit = self.hparams.max_len - 2
        feats = []
        for words in sents:
            for piece in split_words(words, limit):
                enc = self.tokenizer.encode("".join(piece))
                tags = [S_TAG, *words_to_tags(piece), S_TAG]
                if len(tags) != len(enc.ids):  # a word with whitespace inside: cannot happen after parsing
                    raise DataError("<train>", None, f"tag/token mismatch in {''.join(piece)[:30]!r}")
                feats.append({"input_ids": enc.ids, "labels": tags, "index": len(feats)})
        return feats

    def _eval_features(self, texts: list[str]) -> tuple[list[_Piece], list[dict[str, Any]]]:
        assert self.tokenizer is not None
        pieces, feats = [], []
        for s, text in enumerate(texts):
            start = 0
            for chunk in split_text(text, self.hparams.max_len - 2) if text else []:
                enc = self.tokenizer.encode(chunk)
                if len(enc.ids) > 2:  # an all-space chunk has nothing to tag
                    pieces.append(_Piece(s, start, chunk))
                    feats.append({"input_ids": enc.ids, "offsets": enc.offsets, "index": len(feats)})
                start += len(chunk)
        return pieces, feats

    def model_kwargs(self) -> dict[str, Any]:
        """What the model must know about the data (after setup): the kept vocab ids."""
        self.setup("fit")
        return {"vocab_keep_ids": self.keep_ids}

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        feats = self.features[split]
        bs = self.hparams.batch_size if shuffle else self.hparams.eval_batch_size
        sampler = BucketBatchSampler(
            [len(f["input_ids"]) for f in feats], bs, shuffle=shuffle, pool_batches=self.hparams.pool_batches, seed=self.hparams.seed
        )
        assert self.tokenizer is not None
        return DataLoader(
            feats,
            batch_sampler=sampler,
            collate_fn=partial(pad_collate, pad_id=self.tokenizer.pad_id),
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    def set_predict_texts(self, texts: Sequence[str]) -> None:
        """Raw texts to segment with ``predict_dataloader`` / ``decode("predict", ...)``."""
        if self.tokenizer is None:
            self.tokenizer = CharTokenizer(self.hparams.vocab_file, keep_ids=self.keep_ids)
        self.texts["predict"] = list(texts)
        self.pieces["predict"], self.features["predict"] = self._eval_features(self.texts["predict"])

    @staticmethod
    def format_prediction(text: str, words: list[str]) -> dict[str, Any]:
        """JSON-ready output: the words with [start, end) character offsets into ``text``."""
        out, pos = [], 0
        for w in words:
            start = text.index(w[0], pos)  # skip whitespace between words
            out.append({"word": w, "start": start, "end": start + len(w)})
            pos = start + len(w)
        return {"text": text, "words": out}

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # ------------------------------------------------------------------ scoring
    def decode(self, split: str, predictions: Mapping[int, Sequence[int]]) -> list[list[str]]:
        """Feature index -> tags per token (with [CLS]/[SEP]) into words per sentence/line."""
        char_tags: list[dict[int, int]] = [{} for _ in self.texts[split]]
        for idx, tags in predictions.items():
            piece = self.pieces[split][idx]
            for off, tag in zip(self.features[split][idx]["offsets"], tags):
                if off >= 0:
                    char_tags[piece.sent][piece.start + off] = int(tag)
        return [words_from_tags(text, ct) for text, ct in zip(self.texts[split], char_tags)]

    def score(self, split: str, predictions: Mapping[int, Sequence[int]]) -> tuple[dict[str, Any], list[list[str]]]:
        """Metrics of the predicted segmentation of ``split`` and the predicted words."""
        missing = len(self.features[split]) - len(predictions)
        if missing:
            log.warning("%s: %d of %d inputs have no prediction (a limited eval run?)", split, missing, len(self.features[split]))
        pred = self.decode(split, predictions)
        return segmentation_scores(pred, self.gold[split], self.train_words), pred

    def save_outputs(self, split: str, outputs: list[list[str]], out_dir: str) -> list[str]:
        """Predictions in the official SIGHAN format (two spaces between words, every line kept)."""
        import os

        from bertlab.data.cws import write_segmentation

        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_segmentation.txt")
        write_segmentation(path, outputs)
        return [path]
