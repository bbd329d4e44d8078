"""DataModule for character-level NER (People's Daily NER with BIO, Resume NER with BMES).

Readers, splits and the entity-preserving cutter live in :mod:`bertlab.data.ner` (see
data/README.md); entity scoring (seqeval-identical) in :mod:`bertlab.metrics.entities`.
The label list comes from the config (``data.types`` + ``data.scheme``), never from the
files; [CLS]/[SEP] are labelled O.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from bertlab.data.ner import load_ner_splits, scheme_labels, split_tagged_sentence
from bertlab.data.tagging import CharTaggingDataModule, Splits, tag_strings
from bertlab.metrics.entities import entities_from_tags
from bertlab.utils.errors import ConfigError


class NerDataModule(CharTaggingDataModule):
    boundary_tag = 0  # "O"

    def __init__(
        self,
        dataset: str,
        data_dir: str,
        scheme: str,
        types: Sequence[str],
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
        split: str = "test_train",
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
        )
        self.save_hyperparameters(logger=False)
        try:
            self.labels = scheme_labels(scheme, list(types))
        except ValueError as err:
            raise ConfigError("data.types", str(err)) from err
        self.label_id = {t: i for i, t in enumerate(self.labels)}
        self.scheme = scheme

    @property
    def entity_scheme(self) -> str:
        return self.scheme

    @property
    def tag_names(self) -> list[str]:
        return self.labels

    def read_splits(self) -> Splits:
        hp = self.hparams
        try:
            splits = load_ner_splits(hp.dataset, hp.data_dir, self.labels, hp.split)
        except ValueError as err:
            if type(err) is ValueError:  # DataErrors name their file already
                raise ConfigError("data.split" if "split rule" in str(err) else "data.dataset", str(err)) from err
            raise
        # the tokenizer skips whitespace: drop whitespace characters (never inside an entity
        # in the shipped data) from training sentences, keep them in evaluation texts
        train = []
        for _, chars, tags in splits.train:
            keep = [i for i, c in enumerate(chars) if not c.isspace()]
            train.append(("".join(chars[i] for i in keep), [self.label_id[tags[i]] for i in keep]))
        evals = {
            s: (["".join(c) for _, c, _ in getattr(splits, s)], [list(t) for _, _, t in getattr(splits, s)])
            for s in ("val", "test")
        }
        return Splits(train, evals, splits.stats())

    def split_train(self, text: str, tags: list[int], max_chars: int) -> list[tuple[str, list[int]]]:
        pieces = split_tagged_sentence(list(text), [self.labels[t] for t in tags], max_chars, self.scheme)
        return [("".join(c), [self.label_id[t] for t in ts]) for c, ts in pieces]

    def tag_strings(self, char_tags: Sequence[int | None]) -> list[str]:
        """Tag names of one text's per-character tag ids (whitespace: ``O``)."""
        return tag_strings(self.labels, char_tags)

    def format_prediction(self, text: str, char_tags: list[int | None]) -> dict[str, Any]:
        return {"text": text, "entities": entities_from_tags(text, self.tag_strings(char_tags), self.scheme)}

    def save_outputs(self, split: str, outputs: list[Any], out_dir: str) -> list[str]:
        """One JSON line per sentence: its text and the predicted entities with offsets."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_entities.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for text, ents in zip(self.texts[split], outputs):
                f.write(json.dumps({"text": text, "entities": ents}, ensure_ascii=False) + "\n")
        return [path]
