"""Character-level tagging DataModules: the machinery shared by CWS and NER.

A task subclass only says how to read its splits and what predicted tags mean:

- ``read_splits()`` -> training sentences as ``(text, tags)`` (one tag per character of a
  text without whitespace) and, per evaluation split, the raw texts and their gold answers;
- ``split_train(text, tags, max_chars)`` -> pieces that fit the model;
- ``format_prediction(text, char_tags)`` -> a JSON-ready dict for ``bertlab.predict``.

This base class tokenizes (``data.tokenizer``: one token per character, or WordPiece;
:mod:`bertlab.data.tokenization`), trims the vocabulary, cuts evaluation texts longer than
``max_len - 2`` characters at punctuation (:func:`bertlab.data.cws.split_text`) and glues
the predicted tags back onto the original text, so every input character and line is kept;
batches are length-bucketed and dynamically padded.

With WordPiece the labels of a training piece are placed on its tokens by the task's
:meth:`CharTaggingDataModule.token_labels` (CWS: each word's tokens B/M/E/S; NER: the
entities' character spans through the offsets, :mod:`bertlab.data.alignment`), and the
predicted token tags go back to one tag per character by :meth:`token_tags_to_chars`. A
piece of at most ``max_len - 2`` characters has at most that many tokens but for rare
characters that WordPiece splits (a Hangul syllable's jamo): such an evaluation chunk is cut
again, such a training piece is dropped (counted: ``train_pieces_over_max_len``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from bertlab.data.base import CharDataModule
from bertlab.data.collate import pad_collate
from bertlab.data.cws import split_text, words_from_tags
from bertlab.data.samplers import BucketedSplitLoaders
from bertlab.data.tokenization import Encoding
from bertlab.utils.errors import ConfigError, DataError
from bertlab.utils.startup_checks import check_char_budget

log = logging.getLogger(__name__)


@dataclass
class Piece:
    """A model input: characters [start, start+len(text)) of text number ``sent``."""

    sent: int
    start: int
    text: str


@dataclass
class Splits:
    train: list[tuple[str, list[int]]]
    #: split name -> (texts, gold answers in the task's own form)
    evals: dict[str, tuple[list[str], list[Any]]]
    stats: dict[str, int]


def tag_strings(tag_names: Sequence[str], char_tags: Sequence[int | None]) -> list[str]:
    """Tag names of one text's per-character tag ids (whitespace, None: ``O``)."""
    return ["O" if t is None else tag_names[t] for t in char_tags]


@dataclass(frozen=True)
class TaggingEvalData:
    """What scoring a tagging split reads (:meth:`CharTaggingDataModule.eval_data`): the texts,
    their gold answers (CWS: the words; NER: one tag name per character), the tag names, the
    split's ``decode`` (``{feature index: tags per token}`` -> one tag per character of every
    text), the entity scheme (NER; None for CWS) and the training word list (CWS's OOV recall)."""

    split: str
    texts: list[str]
    gold: list[Any]
    tag_names: Sequence[str]
    decode: Callable[[Mapping[int, Sequence[int]]], list[list[int | None]]]
    entity_scheme: str | None = None
    train_words: set[str] | frozenset[str] = frozenset()

    def words(self, char_tags: Sequence[Sequence[int | None]]) -> list[list[str]]:
        """The words of every text given one tag per character (CWS's outputs)."""
        return [words_from_tags(text, tags) for text, tags in zip(self.texts, char_tags)]

    def tag_strings(self, char_tags: Sequence[int | None]) -> list[str]:
        return tag_strings(self.tag_names, char_tags)


class CharTaggingDataModule(BucketedSplitLoaders, CharDataModule):
    #: the tag of [CLS]/[SEP] and of characters without a prediction
    boundary_tag: int = 0
    #: tag names in id order (a class attribute or a property of the subclass)
    tag_names: Sequence[str] = ()
    #: the tags are entity tags of this scheme (NER: BIO/BIOES...); None: they are not (CWS)
    entity_scheme: str | None = None

    def __init__(
        self,
        vocab_file: str,
        max_len: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        pool_batches: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "none",
        fixed_padding: bool = False,
        tokenizer: str = "char",
    ):
        super().__init__()
        self.fixed_padding = bool(fixed_padding)
        if max_len < 3:
            raise ConfigError("data.max_len", f"must be >= 3 (room for [CLS], [SEP] and a character), got {max_len}")
        self.features: dict[str, list[dict[str, Any]]] = {}
        self.pieces: dict[str, list[Piece]] = {}
        self.texts: dict[str, list[str]] = {}
        self.gold: dict[str, list[Any]] = {}
        #: the training word list (CWS: OOV recall); empty for a task without one
        self.train_words: set[str] | frozenset[str] = frozenset()

    # ------------------------------------------------------------------ task hooks
    def read_splits(self) -> Splits:
        raise NotImplementedError

    def split_train(self, text: str, tags: list[int], max_chars: int) -> list[tuple[str, list[int]]]:
        raise NotImplementedError

    def format_prediction(self, text: str, char_tags: list[int | None]) -> dict[str, Any]:
        raise NotImplementedError

    def token_labels(self, text: str, char_tags: list[int], enc: Encoding) -> list[int]:
        """WordPiece: the label of every token of ``enc`` ([CLS]/[SEP] included) from one tag
        per character of ``text`` (counts go into ``self.stats``)."""
        raise NotImplementedError(f"{type(self).__name__} does not support data.tokenizer=wordpiece")

    def token_tags_to_chars(
        self, text: str, offsets: Sequence[int], ends: Sequence[int], tags: Sequence[int]
    ) -> list[int | None]:
        """WordPiece: predicted tags per token -> one tag per character of ``text`` (None: no token)."""
        raise NotImplementedError(f"{type(self).__name__} does not support data.tokenizer=wordpiece")

    # ------------------------------------------------------------------ reading
    def setup(self, stage: str | None = None) -> None:
        """Read and tokenize. Training features only for fitting; a preset ``keep_ids``
        (from a checkpoint) is used as is instead of being derived from the training data."""
        fitting = stage in (None, "fit")
        if "test" in self.features and (not fitting or "train" in self.features):
            return
        hp = self.hparams
        splits = self.read_splits()
        self.stats = dict(splits.stats)
        train = splits.train
        if hp.max_train_chars:
            train = self._subset(train, int(hp.max_train_chars), hp.seed)
        self.build_tokenizer(text for text, _ in train)
        if fitting:
            self.features["train"] = self._train_features(train)
            self.stats.update(
                train_features=len(self.features["train"]),
                train_tokens=sum(len(f["input_ids"]) for f in self.features["train"]),
                train_unk_tokens=sum(
                    f["input_ids"].count(self.ensure_tokenizer().unk_id) for f in self.features["train"]
                ),
            )
            self._warn_alignment_losses()
        for split, (texts, gold) in splits.evals.items():
            if hp.max_eval_sentences:
                texts, gold = texts[: hp.max_eval_sentences], gold[: hp.max_eval_sentences]
            self.texts[split], self.gold[split] = list(texts), list(gold)
            self.pieces[split], self.features[split] = self._eval_features(self.texts[split])
            self.stats[f"{split}_features"] = len(self.features[split])
        self.stats["vocab_size"] = len(self.ensure_tokenizer())
        log.info("%s data: %s", type(self).__name__, self.stats)

    def _warn_alignment_losses(self) -> None:
        """WordPiece: say what the tokens could not carry (the ``*_inside_tokens`` counts)."""
        for key, n in self.stats.items():
            if key.endswith("_inside_tokens") and n:
                total = self.stats.get(key.replace("_inside_tokens", "_total"), 0)
                log.warning(
                    "%s: %d of %d fall inside a WordPiece token (data.tokenizer=wordpiece): %s",
                    key,
                    n,
                    total,
                    self.alignment_loss_note,
                )
        if self.stats.get("train_pieces_over_max_len"):
            log.warning(
                "%d training pieces have more than data.max_len=%d WordPiece tokens: dropped",
                self.stats["train_pieces_over_max_len"],
                self.hparams.max_len,
            )

    #: what happens to a label that falls inside a token (the warning of _warn_alignment_losses)
    alignment_loss_note: str = "not placed"

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    @staticmethod
    def _subset(sents: list[tuple[str, list[int]]], max_chars: int, seed: int) -> list[tuple[str, list[int]]]:
        """A fixed random subset of whole training sentences with at most ``max_chars`` characters."""
        order = list(range(len(sents)))
        random.Random(seed).shuffle(order)
        out, total = [], 0
        for i in order:
            n = len(sents[i][0])
            if total + n > max_chars:
                break
            out.append(i)
            total += n
        check_char_budget(len(out), len(sents), max_chars, len(sents[order[0]][0]) if sents else None)
        return [sents[i] for i in sorted(out)]

    def _train_features(self, sents: list[tuple[str, list[int]]]) -> list[dict[str, Any]]:
        assert self.tokenizer is not None
        feats: list[dict[str, Any]] = []
        for text, tags in sents:
            for piece, piece_tags in self.split_train(text, tags, self.hparams.max_len - 2):
                enc = self.tokenizer.encode(piece)
                if self.wordpiece:
                    if len(enc.ids) > self.hparams.max_len:
                        self._count("train_pieces_over_max_len")
                        continue
                    labels = self.token_labels(piece, piece_tags, enc)
                else:
                    labels = [self.boundary_tag, *piece_tags, self.boundary_tag]
                if len(labels) != len(enc.ids):
                    raise DataError(
                        "<train>", None, f"{len(piece_tags)} tags for {len(enc.ids) - 2} tokens in {piece[:30]!r}"
                    )
                feats.append({"input_ids": enc.ids, "labels": labels, "index": len(feats)})
        return feats

    def _eval_features(self, texts: list[str]) -> tuple[list[Piece], list[dict[str, Any]]]:
        assert self.tokenizer is not None
        pieces: list[Any] = []
        feats: list[dict[str, Any]] = []
        for s, text in enumerate(texts):
            start = 0
            for chunk in split_text(text, self.hparams.max_len - 2) if text else []:
                for sub_start, sub, enc in self._encode_fitting(start, chunk):
                    if len(enc.ids) > 2:  # an all-space chunk has nothing to tag
                        pieces.append(Piece(s, sub_start, sub))
                        feat = {"input_ids": enc.ids, "offsets": enc.offsets, "index": len(feats)}
                        if self.wordpiece:
                            feat["ends"] = enc.ends
                        feats.append(feat)
                start += len(chunk)
        return pieces, feats

    def _encode_fitting(self, start: int, chunk: str) -> list[tuple[int, str, Encoding]]:
        """``chunk`` (at ``start``) encoded, cut in halves until each part fits ``max_len`` tokens
        (only WordPiece can give more tokens than characters)."""
        assert self.tokenizer is not None  # built by setup before the features
        enc = self.tokenizer.encode(chunk)
        if len(enc.ids) <= self.hparams.max_len or len(chunk) < 2:
            return [(start, chunk, enc)]
        half = len(chunk) // 2
        return self._encode_fitting(start, chunk[:half]) + self._encode_fitting(start + half, chunk[half:])

    # ------------------------------------------------------------------ loaders
    def collate_fn(self, train: bool) -> Any:
        assert self.tokenizer is not None
        # fixed_padding (training only): every batch padded to max_len, the naive pipeline
        return partial(
            pad_collate,
            pad_id=self.tokenizer.pad_id,
            pad_to=self.hparams.max_len if train and self.fixed_padding else None,
        )

    def model_kwargs(self) -> dict[str, Any]:
        """What the model must know about the data (after setup): the kept vocab ids."""
        return {**super().model_kwargs(), "num_tags": len(self.tag_names)}

    def eval_data(self, split: str) -> TaggingEvalData:
        """What scoring ``split`` reads (after ``setup``)."""
        return TaggingEvalData(
            split=split,
            texts=self.texts[split],
            gold=self.gold[split],
            tag_names=self.tag_names,
            decode=partial(self.decode, split),
            entity_scheme=self.entity_scheme,
            train_words=self.train_words,
        )

    def set_predict_texts(self, texts: Sequence[str]) -> None:
        """Raw texts for ``predict_dataloader`` / ``decode("predict", ...)``."""
        self.ensure_tokenizer()
        self.texts["predict"] = list(texts)
        self.pieces["predict"], self.features["predict"] = self._eval_features(self.texts["predict"])

    # ------------------------------------------------------------------ predictions
    def char_tags(self, split: str, predictions: Mapping[int, Sequence[int]]) -> list[list[int | None]]:
        """Feature index -> tags per token (with [CLS]/[SEP]) into one tag per character of every
        text (None for whitespace; the boundary tag where a piece has no prediction)."""
        out = [[None if ch.isspace() else self.boundary_tag for ch in text] for text in self.texts[split]]
        for idx, tags in predictions.items():
            piece = self.pieces[split][idx]
            feat = self.features[split][idx]
            if self.wordpiece:
                chars = self.token_tags_to_chars(piece.text, feat["offsets"], feat["ends"], tags)
                row = out[piece.sent]
                for k, tag in enumerate(chars):
                    if tag is not None and row[piece.start + k] is not None:
                        row[piece.start + k] = tag
                continue
            for off, tag in zip(feat["offsets"], tags):
                if off >= 0:
                    out[piece.sent][piece.start + off] = int(tag)
        return out

    def decode(self, split: str, predictions: Mapping[int, Sequence[int]]) -> list[list[int | None]]:
        """One tag per character of every text of ``split`` (see :meth:`char_tags`)."""
        missing = len(self.features[split]) - len(predictions)
        if missing and split != "predict":
            log.warning(
                "%s: %d of %d inputs have no prediction (a limited eval run?)",
                split,
                missing,
                len(self.features[split]),
            )
        return self.char_tags(split, predictions)
