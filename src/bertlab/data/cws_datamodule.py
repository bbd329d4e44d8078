"""DataModule for Chinese word segmentation: People's Daily 1998 -> SIGHAN-2005 PKU test.

Reading and splitting rules live in :mod:`bertlab.data.cws` (see data/README.md); the
character-level machinery (tokenization, cutting and rejoining long texts, batching) in
:mod:`bertlab.data.tagging`. Tags are BMES with [CLS]/[SEP] as s, as in the posts.

``data.tokenizer: wordpiece``: each word's WordPiece tokens are tagged B/M/E/S (``1998年``
is the words ``1998`` ``年``: tokens ``1998`` ``年``, tags S S; ``iPhone`` is one token, S);
a word boundary inside a token joins its words (counted, ``train_word_boundaries_inside_tokens``).
Predicted token tags go back to characters (:func:`bertlab.data.alignment.bmes_to_chars`):
every character of a token belongs to that token's word, whitespace still ends a word and a
character without a token (a control character) is a word of its own, so the segmented
output holds every input character.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from bertlab.data.alignment import bmes_over_tokens, bmes_to_chars
from bertlab.data.cws import (
    TAGS,
    load_cws_splits,
    read_raw_lines,
    split_words,
    words_from_tags,
    words_to_tags,
    write_segmentation,
)
from bertlab.data.io import read_word_list
from bertlab.data.tagging import CharTaggingDataModule, Splits
from bertlab.data.tokenization import Encoding
from bertlab.utils.errors import DataError
from bertlab.utils.value_rules import ValueRule

S_TAG = 0  # [CLS] and [SEP] carry the "single" tag, as in the posts


class CwsDataModule(CharTaggingDataModule):
    tag_names: tuple[str, ...] = TAGS
    boundary_tag = S_TAG
    VALUE_RULES = (*CharTaggingDataModule.VALUE_RULES, ValueRule("val_every", "int", 1))

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
        fixed_padding: bool = False,
        allow_segmented_raw: bool = False,
        tokenizer: str = "char",
    ):
        super().__init__(
            vocab_file,
            max_len,
            batch_size,
            eval_batch_size,
            max_train_chars,
            max_eval_sentences,
            pool_batches,
            num_workers,
            seed,
            trim_vocab,
            fixed_padding,
            tokenizer,
        )
        self.save_hyperparameters(logger=False)

    def read_splits(self) -> Splits:
        hp = self.hparams
        splits = load_cws_splits(list(hp.train_files), hp.test_gold_file, val_every=hp.val_every)
        raw = read_raw_lines(hp.test_raw_file, allow_segmented=hp.allow_segmented_raw)
        if len(raw) != len(splits.test):
            raise DataError(
                hp.test_raw_file, None, f"{len(raw)} lines but the gold file {hp.test_gold_file} has {len(splits.test)}"
            )
        for i, (line, words) in enumerate(zip(raw, splits.test)):
            if "".join(line.split()) != "".join(words):
                raise DataError(hp.test_raw_file, i + 1, f"text differs from line {i + 1} of {hp.test_gold_file}")
        self.train_words = read_word_list(hp.train_words_file)
        train = [("".join(words), words_to_tags(words)) for words in splits.train]
        evals = {"val": (["".join(w) for w in splits.val], splits.val), "test": (raw, splits.test)}
        return Splits(train, evals, splits.stats())

    def split_train(self, text: str, tags: list[int], max_chars: int) -> list[tuple[str, list[int]]]:
        # cut at word boundaries after punctuation: recover the words from the gold tags
        words = words_from_tags(text, tags)
        return [("".join(p), words_to_tags(p)) for p in split_words(words, max_chars)]

    alignment_loss_note = "their words are joined into one training word"

    def token_labels(self, text: str, char_tags: list[int], enc: Encoding) -> list[int]:
        """Each word's tokens B/M/E/S (see the module doc)."""
        words = words_from_tags(text, char_tags)
        tags, inside = bmes_over_tokens(enc.offsets, enc.ends, words, self.boundary_tag)
        self._count("train_word_boundaries_inside_tokens", inside)
        self._count("train_word_boundaries_total", len(words) - 1)
        return tags

    def token_tags_to_chars(
        self, text: str, offsets: Sequence[int], ends: Sequence[int], tags: Sequence[int]
    ) -> list[int | None]:
        return bmes_to_chars(len(text), offsets, ends, tags)

    def format_prediction(self, text: str, char_tags: list[int | None]) -> dict[str, Any]:
        """JSON-ready output: the words with [start, end) character offsets into ``text``."""
        out, pos = [], 0
        for w in words_from_tags(text, char_tags):
            start = text.index(w[0], pos)  # skip whitespace between words
            out.append({"word": w, "start": start, "end": start + len(w)})
            pos = start + len(w)
        return {"text": text, "words": out}

    def save_outputs(self, split: str, outputs: list[list[str]], out_dir: str) -> list[str]:
        """Predictions in the official SIGHAN format (two spaces between words, every line kept)."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_segmentation.txt")
        write_segmentation(path, outputs)
        return [path]
