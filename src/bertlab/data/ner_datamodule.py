"""DataModule for character-level NER (People's Daily NER with BIO, Resume NER with BMES).

Readers, splits and the entity-preserving cutter live in :mod:`bertlab.data.ner` (see
data/README.md); entity scoring (seqeval-identical) in :mod:`bertlab.metrics.entities`.
The label list comes from the config (``data.types`` + ``data.scheme``), never from the
files; [CLS]/[SEP] are labelled O.

``data.tokenizer: wordpiece``: an entity's character span maps to the tokens from the one
starting at its first character to the one ending at its last, which get the scheme's tags
(bert4keras's ``start_mapping``/``end_mapping``); an entity whose boundary falls inside a token
is left out of that sentence's labels (O), counted (``train_entities_inside_tokens``) and
stated at WARNING; more than 1 % of the training entities (and more than one) is refused, as
the readers refuse a file whose repairs pass 1 %. Predicted token tags are read as entities
back over their characters token by token (:func:`bertlab.data.alignment.expand_entity_tags`;
scored at character level against the original gold, as in char mode).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from bertlab.data.alignment import entity_tags, expand_entity_tags, token_spans
from bertlab.data.format_checks import MAX_BAD_FRACTION
from bertlab.data.ner import load_ner_splits, scheme_labels, split_tagged_sentence
from bertlab.data.tagging import CharTaggingDataModule, Splits, tag_strings
from bertlab.data.tokenization import Encoding
from bertlab.metrics.entities import entities_from_tags, extract_entities
from bertlab.utils.errors import ConfigError, DataError


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
        try:
            self.labels = scheme_labels(scheme, list(types))
        except ValueError as err:
            raise ConfigError("data.types", str(err)) from err
        self.label_id = {t: i for i, t in enumerate(self.labels)}
        self.scheme = scheme
        self.entity_scheme = scheme
        self.tag_names = self.labels

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

    alignment_loss_note = "those entities are left out of their sentence's training labels"

    def token_labels(self, text: str, char_tags: list[int], enc: Encoding) -> list[int]:
        """The entities' character spans through the offsets (see the module doc)."""
        ents = extract_entities([self.labels[t] for t in char_tags], self.scheme)
        spans = token_spans(enc.offsets, enc.ends, [(s, e) for _, s, e in ents])
        placed = [(typ, sp[0], sp[1] + 1) for (typ, _, _), sp in zip(ents, spans) if sp is not None]
        self._count("train_entities_inside_tokens", len(ents) - len(placed))
        self._count("train_entities_total", len(ents))
        return [self.label_id[t] for t in entity_tags(len(enc.ids), placed, self.scheme)]

    def token_tags_to_chars(
        self, text: str, offsets: Sequence[int], ends: Sequence[int], tags: Sequence[int]
    ) -> list[int | None]:
        names = [self.labels[int(t)] for t in tags]
        chars = expand_entity_tags(len(text), offsets, ends, names, self.scheme)
        return [None if t is None else self.label_id[t] for t in chars]

    def _train_features(self, sents: list[tuple[str, list[int]]]) -> list[dict[str, Any]]:
        feats = super()._train_features(sents)
        n, total = self.stats.get("train_entities_inside_tokens", 0), self.stats.get("train_entities_total", 0)
        if self.wordpiece and n > max(1, MAX_BAD_FRACTION * total):
            raise DataError(
                self.hparams.data_dir,
                None,
                f"{n} of {total} training entities ({n / total:.1%}) have a boundary inside a WordPiece token, more "
                f"than {MAX_BAD_FRACTION:.0%}: they cannot be labelled (data.tokenizer=char tags every character)",
            )
        return feats

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
