"""DataModule for the sentiment-conditioned language model (post 7124, conditional LN).

Data: the shipped sentiment corpus (data/sentiment/sentiment.zip; train 16,883 / valid
2,111 / test 2,111 texts, label 0 negative, 1 positive), read with
:func:`bertlab.data.sentiment.read_sentiment`. The train split trains, valid validates,
test tests (``overfit_texts=N``: all three are the first N training texts, the overfit check).

Chunking rule (bert4keras ``text_segmentate(text, maxlen - 2, seps, strips)`` as in the
post's example, plus a hard cut): a text longer than ``max_len - 2`` = 126 characters is
split at the separators ``\\n 。 ！ ？ ! ? ； ; ， , <space>`` tried in that order (a
separator stays at the end of its piece), consecutive pieces are merged greedily while
they fit, and only a piece still too long is split at the next separator; a piece longer
than 126 characters with no separator left is cut hard every 126 characters (bert4keras
would truncate it instead). Every chunk is stripped of surrounding whitespace and of the
characters ``；;，,<space>`` at both ends; empty chunks are dropped. Every chunk keeps its
text's label.

Features: ``[CLS] chunk [SEP]`` (one token per non-space character,
:class:`~bertlab.data.tokenization.CharTokenizer`); batches carry ``targets`` = the next
token at every position (``input_ids`` shifted left), -100 at the last real position and at
padding, so the loss is next-token cross-entropy with padding masked. The vocabulary is
trimmed as ``trim_vocab`` says (``corpus``: the tokens of the training chunks + every CJK
character, ~4.7k tokens) so the LM head, which runs at every position, stays cheap.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from bertlab.data.base import CharDataModule
from bertlab.data.samplers import BucketedSplitLoaders
from bertlab.data.sentiment import read_sentiment
from bertlab.utils.errors import ConfigError
from bertlab.utils.startup_checks import check_char_budget

log = logging.getLogger(__name__)

SEPS = "\n。！？!?；;，, "
STRIPS = "；;，, "
IGNORE = -100
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def text_segmentate(text: str, maxlen: int, seps: str = SEPS, strips: str | None = STRIPS) -> list[str]:
    """bert4keras's ``text_segmentate`` (see the module doc); may return pieces > maxlen
    when no separator is left (``segment_text`` cuts those)."""
    text = text.strip().strip(strips) if strips else text.strip()
    if seps and len(text) > maxlen:
        pieces = text.split(seps[0])
        text, texts = "", []
        for i, p in enumerate(pieces):
            if text and p and len(text) + len(p) > maxlen - 1:
                texts.extend(text_segmentate(text, maxlen, seps[1:], strips))
                text = ""
            text = text + p if i + 1 == len(pieces) else text + p + seps[0]
        if text:
            texts.extend(text_segmentate(text, maxlen, seps[1:], strips))
        return texts
    return [text]


def segment_text(text: str, maxlen: int = 126) -> list[str]:
    """Chunks of at most ``maxlen`` characters (the module doc's rule), none empty."""
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    out = []
    for piece in text_segmentate(text, maxlen):
        for i in range(0, len(piece), maxlen):
            chunk = piece[i : i + maxlen].strip().strip(STRIPS)
            if chunk:
                out.append(chunk)
    return out


def lm_collate(features: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask ``[B, T]`` (dynamic padding), cond_labels ``[B]``, targets
    ``[B, T]`` (next token; -100 at the last real position and at padding), index ``[B]``."""
    longest = max(len(f["input_ids"]) for f in features)
    n = len(features)
    input_ids = torch.full((n, longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, longest), dtype=torch.bool)
    targets = torch.full((n, longest), IGNORE, dtype=torch.long)
    for i, f in enumerate(features):
        ids = torch.as_tensor(f["input_ids"], dtype=torch.long)
        input_ids[i, : len(ids)] = ids
        attention_mask[i, : len(ids)] = True
        targets[i, : len(ids) - 1] = ids[1:]
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "targets": targets,
        "cond_labels": torch.as_tensor([f["label"] for f in features], dtype=torch.long),
        "index": torch.as_tensor([f["index"] for f in features], dtype=torch.long),
    }


@dataclass(frozen=True)
class GenerationEvalData:
    """What judging generated texts reads (:meth:`GenerationDataModule.eval_data`): token ids ->
    text (``decode_ids``) and the training texts (the copy rate; empty: none read)."""

    decode_ids: Callable[[Sequence[int]], str]
    train_texts: list[str]


class GenerationDataModule(BucketedSplitLoaders, CharDataModule):
    def __init__(
        self,
        data_file: str,
        vocab_file: str,
        max_len: int = 128,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        label_names: Sequence[str] = ("negative", "positive"),
        pool_batches: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "corpus",
        overfit_texts: int | None = None,
    ):
        """``overfit_texts``: N > 0 makes every split (train, val AND test) the first N texts of
        the training split: the overfit check (experiment=cond_gen_overfit), whose perplexity is
        on training texts by construction."""
        super().__init__()
        if overfit_texts is not None and int(overfit_texts) < 1:
            raise ConfigError("data.overfit_texts", f"must be >= 1 or null, got {overfit_texts}")
        if max_len < 3:
            raise ConfigError("data.max_len", f"must be >= 3 (room for [CLS], [SEP] and a character), got {max_len}")
        if len(label_names) != 2:
            raise ConfigError("data.label_names", f"the sentiment corpus has 2 labels, got {list(label_names)}")
        self.save_hyperparameters(logger=False)
        self.texts: dict[str, list[str]] = {}
        self.labels: dict[str, list[int]] = {}
        self.features: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ reading
    def _read(self, split: str) -> tuple[list[str], list[int], int]:
        """Chunks and labels of a split (a fixed random subset of whole texts when
        ``max_train_chars`` / ``max_eval_sentences`` say so), and its number of texts."""
        hp = self.hparams
        if hp.overfit_texts:
            rows = read_sentiment(hp.data_file, SPLIT_FILES["train"])[: int(hp.overfit_texts)]
            texts = [chunk for text, _ in rows for chunk in segment_text(text, hp.max_len - 2)]
            labels = [label for text, label in rows for _ in segment_text(text, hp.max_len - 2)]
            return texts, labels, len(rows)
        rows = read_sentiment(hp.data_file, SPLIT_FILES[split])
        n_texts = len(rows)
        order = list(range(len(rows)))
        random.Random(hp.seed).shuffle(order)
        if split == "train" and hp.max_train_chars:
            keep, total = [], 0
            for i in order:
                total += len(rows[i][0])
                if total > hp.max_train_chars:
                    break
                keep.append(i)
            check_char_budget(len(keep), len(rows), hp.max_train_chars, len(rows[order[0]][0]) if rows else None)
            rows = [rows[i] for i in sorted(keep)]
        elif split != "train" and hp.max_eval_sentences and hp.max_eval_sentences < len(rows):
            rows = [rows[i] for i in sorted(order[: int(hp.max_eval_sentences)])]
        texts, labels = [], []
        for text, label in rows:
            for chunk in segment_text(text, self.hparams.max_len - 2):
                texts.append(chunk)
                labels.append(label)
        return texts, labels, n_texts

    def setup(self, stage: str | None = None) -> None:
        """Read, chunk and encode. A preset ``keep_ids`` (from a checkpoint) is used as is."""
        fitting = stage in (None, "fit")
        if "test" in self.features and (not fitting or "train" in self.features):
            return
        need_train = fitting or self.trims_vocab
        if need_train and "train" not in self.texts:
            self.texts["train"], self.labels["train"], self.stats["train_texts"] = self._read("train")
        self.build_tokenizer(ch for text in self.texts.get("train", ()) for ch in text if not ch.isspace())
        splits = (["train"] if fitting else []) + ["val", "test"]
        for split in splits:
            if split != "train":
                self.texts[split], self.labels[split], self.stats[f"{split}_texts"] = self._read(split)
            self.features[split] = self._encode(self.texts[split], self.labels[split])
            self.stats[f"{split}_chunks"] = len(self.features[split])
            self.stats[f"{split}_tokens"] = sum(len(f["input_ids"]) for f in self.features[split])
        self.stats["vocab_size"] = len(self.tokenizer)
        log.info("GenerationDataModule: %s", self.stats)

    def _encode(self, texts: list[str], labels: list[int]) -> list[dict[str, Any]]:
        assert self.tokenizer is not None
        feats = []
        for text, label in zip(texts, labels):
            ids = self.tokenizer.encode(text).ids
            if len(ids) > self.hparams.max_len:  # cannot happen for chunks of max_len - 2 chars
                ids = ids[: self.hparams.max_len - 1] + [self.tokenizer.sep_id]
            feats.append({"input_ids": ids, "label": int(label), "index": len(feats)})
        return feats

    # ------------------------------------------------------------------ loaders
    def collate_fn(self, train: bool) -> Any:
        return partial(lm_collate, pad_id=self.ensure_tokenizer().pad_id)

    # ------------------------------------------------------------------ model interface
    def special_ids(self) -> dict[str, int]:
        tok = self.ensure_tokenizer()
        out = {"pad": tok.pad_id, "unk": tok.unk_id, "cls": tok.cls_id, "sep": tok.sep_id}
        if "[MASK]" in tok.vocab:
            out["mask"] = tok.vocab["[MASK]"]
        return out

    def model_kwargs(self) -> dict[str, Any]:
        """What the model must know about the data (after ``setup("fit")``)."""
        return {
            **super().model_kwargs(),
            "num_labels": 2,
            "label_names": list(self.hparams.label_names),
            "special_ids": self.special_ids(),
        }

    def decode_ids(self, ids: Sequence[int]) -> str:
        """Generated token ids -> text (character tokens joined; ``##`` stripped)."""
        tok = self.ensure_tokenizer()
        out = []
        for i in ids:
            t = tok.tokens[int(i)]
            out.append(t[2:] if t.startswith("##") else t)
        return "".join(out)

    def eval_data(self, split: str) -> GenerationEvalData:
        """What judging generated texts reads (the same for every split)."""
        return GenerationEvalData(decode_ids=self.decode_ids, train_texts=self.texts.get("train") or [])

    def save_outputs(self, split: str, outputs: list[dict[str, Any]], out_dir: str) -> list[str]:
        """The generated samples of ``split``, one JSON object a line (label, label_name, text)."""
        import json
        import os

        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_samples.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for rec in outputs:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return [path]

    def label_id(self, label: int | str) -> int:
        """A label given as 0/1 or by name (``negative``/``positive``); ValueError otherwise."""
        names = list(self.hparams.label_names)
        if isinstance(label, str) and label in names:
            return names.index(label)
        try:
            value = int(label)
        except (TypeError, ValueError):
            value = None
        if value not in (0, 1) or (isinstance(label, float) and label != value):
            raise ValueError(f"unknown label {label!r}: use 0, 1 or one of {names}")
        return value
