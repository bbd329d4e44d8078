"""DataModule for triple extraction (LIC2019 / DuIE; methods.md section 5).

Reading: :mod:`bertlab.data.triples`. Tokenization: :class:`~bertlab.data.tokenization.CharTokenizer`
(one token per non-space character, with its character offset into the text; or WordPiece,
``data.tokenizer``, below), texts cut
to ``max_len`` tokens ([CLS] + ``max_len - 2`` characters + [SEP]; cut texts are counted).

Span location as in the post: the token ids of a subject (an object) are searched in the
token ids of the (cut) text and the FIRST occurrence is taken. A training triple whose
subject or object is not found is dropped from training, and counted: ``not_found`` (not
in the text at all, e.g. a gold string that differs from the text) or ``beyond_max_len``
(only in the part cut off); a training text with no locatable triple is dropped (counted).
Evaluation always scores against ALL gold triples of a record (also the unlocatable ones,
whose counts are reported with the metrics), so nothing is silently left out. Both are
stated at WARNING with the counts. A split whose gold triples are ``not_found`` more often
than ``max_triples_not_found_fraction`` (1 %, and more than one triple) is refused before
training with a DataError naming the file and the line of the first such record: a file
whose subjects/objects do not match its texts (another corpus's annotation, a converter
bug) would otherwise train on the few triples left. The shipped files have none
(LIC2019 train 0 of 5,293, dev 0 of 2,073; DuIE 2.0 sample 0 of 8,945).

Splits (fixed, documented rule): ``eval_file`` records (after ``eval_slice``) are cut in
two: the FIRST ``val_records`` (200) select checkpoints (``val``), the rest (800 for
LIC2019 dev) are the reported ``test`` split. ``train_slice`` / ``eval_slice`` (``[start,
end)`` record indices) let one file give both (the DuIE 2.0 sample has a train file only).
``overfit_records: N`` trains on the first N training records and evaluates on the SAME
records; its metrics carry ``evaluated_on: training records (overfit check)``.

One subject per training example per step, sampled as in the post: a start uniformly from
the gold subject starts, an end uniformly from the gold subject ends >= that start (so the
pair is not always a real subject; then all object labels are 0; "not a bug" says the
post). ``subject_sampling: gold`` samples a real subject instead. The random choice is a
function of (seed, epoch, example) only, so it does not depend on batch order or resumes.

``data.tokenizer: wordpiece`` (WordPiece tokens with character spans): a subject (an
object) is located as a character span instead, the first occurrence in the text whose
boundaries fall on token boundaries (what the post's search of token ids finds), mapped to
tokens through the offsets (:mod:`bertlab.data.alignment`); one that occurs only with a
boundary inside a token (``6`` inside ``iphone6``) is counted (``inside_token``, dropped
from training like ``not_found``, stated at WARNING) and refused above the same fraction.

Predictions are token spans; :meth:`decode` maps them back to character offsets of the
original text (never detokenizing ids), :meth:`format_prediction` gives the JSON of
``bertlab.predict``. Scoring (P/R/F1, the dictionary baseline) is the task's
(:func:`bertlab.tasks.triple_extraction.score_triples`).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader

from bertlab.data.alignment import token_span
from bertlab.data.base import CharDataModule
from bertlab.data.collate import pad_collate
from bertlab.data.samplers import BucketBatchSampler, ResumableDataLoader
from bertlab.data.tokenization import Encoding, Tokenizer
from bertlab.data.triples import TripleRecord, read_schema, read_triples
from bertlab.utils.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: a located triple in token positions: (subject start, subject end, predicate id, object start, object end)
TokenTriple = tuple[int, int, int, int, int]


def search(pattern: Sequence[int], sequence: Sequence[int]) -> int:
    """First index of ``pattern`` as a contiguous run in ``sequence``; -1 if absent (or empty)."""
    n = len(pattern)
    if n == 0:
        return -1
    first = pattern[0]
    for i in range(len(sequence) - n + 1):
        if sequence[i] == first and list(sequence[i : i + n]) == list(pattern):
            return i
    return -1


def encode_cut(tokenizer: Tokenizer, text: str, max_len: int) -> tuple[list[int], list[int], list[int]]:
    """(ids cut to ``max_len`` with [SEP] kept last, their char offsets, the full ids)."""
    enc, full = encode_cut_spans(tokenizer, text, max_len)
    return enc.ids, enc.offsets, full


def encode_cut_spans(tokenizer: Tokenizer, text: str, max_len: int) -> tuple[Encoding, list[int]]:
    """(the encoding cut to ``max_len`` tokens with [SEP] kept last, the full ids)."""
    enc = tokenizer.encode(text)
    if len(enc.ids) <= max_len:
        return enc, enc.ids
    cut = Encoding(
        enc.ids[: max_len - 1] + [tokenizer.sep_id],
        enc.offsets[: max_len - 1] + [-1],
        enc.num_unk,
        enc.ends[: max_len - 1] + [-1],
    )
    return cut, enc.ids


def locate_span(text: str, span: str, full: Encoding) -> tuple[int, int] | str:
    """WordPiece: the inclusive token span (in ``full``, the uncut encoding of ``text``) of the
    first occurrence of ``span`` whose boundaries are token boundaries; else why not:
    ``not_found`` (not in the text) or ``inside_token``."""
    start = text.find(span) if span else -1
    if start < 0:
        return "not_found"
    while start >= 0:
        hit = token_span(full.offsets, full.ends, start, start + len(span))
        if hit is not None:
            return hit
        start = text.find(span, start + 1)
    return "inside_token"


def locate_triples_by_offsets(
    text: str,
    full: Encoding,
    n_ids: int,
    spo_list: Sequence[tuple[str, str, str]],
    predicate_id: Mapping[str, int],
    not_found: list[tuple[str, str, str]] | None = None,
) -> tuple[dict[tuple[int, int], list[tuple[int, int, int]]], Counter]:
    """:func:`locate_triples` for WordPiece (see the module doc): spans located by characters
    and mapped through the offsets; counts ``located`` / ``not_found`` / ``inside_token`` /
    ``beyond_max_len`` (a span past the first ``n_ids - 1`` tokens of the cut input)."""
    spoes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    counts: Counter = Counter()
    for s, p, o in spo_list:
        s_at, o_at = locate_span(text, s, full), locate_span(text, o, full)
        if isinstance(s_at, str) or isinstance(o_at, str):
            why = "not_found" if "not_found" in (s_at, o_at) else "inside_token"
            counts[why] += 1
            if why == "not_found" and not_found is not None:
                not_found.append((s, p, o))
            continue
        if max(s_at[1], o_at[1]) >= n_ids - 1:
            counts["beyond_max_len"] += 1
            continue
        obj = (o_at[0], o_at[1], predicate_id[p])
        spoes.setdefault(s_at, [])
        if obj not in spoes[s_at]:
            spoes[s_at].append(obj)
        counts["located"] += 1
    return spoes, counts


def span_ids(tokenizer: Tokenizer, span: str) -> list[int]:
    return tokenizer.encode(span).ids[1:-1]


def locate_triples(
    tokenizer: Tokenizer,
    ids: Sequence[int],
    full_ids: Sequence[int],
    spo_list: Sequence[tuple[str, str, str]],
    predicate_id: Mapping[str, int],
    not_found: list[tuple[str, str, str]] | None = None,
) -> tuple[dict[tuple[int, int], list[tuple[int, int, int]]], Counter]:
    """``{(s_start, s_end): [(o_start, o_end, p), ...]}`` (inclusive token positions in
    ``ids``) and counts ``located`` / ``not_found`` / ``beyond_max_len``; the triples not
    found are appended to ``not_found`` when it is given."""
    spoes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    counts: Counter = Counter()
    for s, p, o in spo_list:
        s_ids, o_ids = span_ids(tokenizer, s), span_ids(tokenizer, o)
        s_idx, o_idx = search(s_ids, ids), search(o_ids, ids)
        if s_idx == -1 or o_idx == -1:
            in_full = search(s_ids, full_ids) != -1 and search(o_ids, full_ids) != -1
            beyond = in_full and len(full_ids) > len(ids)
            counts["beyond_max_len" if beyond else "not_found"] += 1
            if not beyond and not_found is not None:
                not_found.append((s, p, o))
            continue
        key = (s_idx, s_idx + len(s_ids) - 1)
        obj = (o_idx, o_idx + len(o_ids) - 1, predicate_id[p])
        spoes.setdefault(key, [])
        if obj not in spoes[key]:
            spoes[key].append(obj)
        counts["located"] += 1
    return spoes, counts


def sample_subject(subjects: Sequence[tuple[int, int]], rng: random.Random, mode: str = "post") -> tuple[int, int]:
    """One (start, end) to condition the object head on (see module doc)."""
    if mode == "gold":
        return subjects[rng.randrange(len(subjects))]
    starts = [s for s, _ in subjects]
    start = starts[rng.randrange(len(starts))]
    ends = [e for _, e in subjects if e >= start]
    return start, ends[rng.randrange(len(ends))]


class TripleCollator:
    """Pads a training batch and draws one subject per example (see module doc).

    Output: input_ids [B, T], attention_mask [B, T] (bool), subject_labels [B, T, 2],
    subject_ids [B, 2], object_labels [B, T, P, 2], index [B].
    """

    def __init__(
        self,
        pad_id: int,
        num_predicates: int,
        seed: int = 0,
        sampling: str = "post",
        epoch_fn: Callable[[], int] | None = None,
    ):
        self.pad_id, self.num_predicates, self.seed, self.sampling = pad_id, num_predicates, seed, sampling
        self.epoch_fn = epoch_fn

    def __call__(self, feats: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_collate([{"input_ids": f["input_ids"], "index": f["index"]} for f in feats], pad_id=self.pad_id)
        bsz, length = batch["input_ids"].shape
        epoch = self.epoch_fn() if self.epoch_fn else 0
        subject_labels = torch.zeros(bsz, length, 2)
        subject_ids = torch.zeros(bsz, 2, dtype=torch.long)
        object_labels = torch.zeros(bsz, length, self.num_predicates, 2)
        for b, f in enumerate(feats):
            spoes = f["spoes"]
            for s, e in spoes:
                subject_labels[b, s, 0] = 1
                subject_labels[b, e, 1] = 1
            rng = random.Random(f"{self.seed}:{epoch}:{f['index']}")
            start, end = sample_subject(list(spoes), rng, self.sampling)
            subject_ids[b, 0], subject_ids[b, 1] = start, end
            for o_start, o_end, p in spoes.get((start, end), []):
                object_labels[b, o_start, p, 0] = 1
                object_labels[b, o_end, p, 1] = 1
        batch.update(subject_labels=subject_labels, subject_ids=subject_ids, object_labels=object_labels)
        return batch


@dataclass(frozen=True)
class TriplesEvalData:
    """What scoring a triples split reads (:meth:`TripleDataModule.eval_data`): its records (text
    and gold triples), the split's ``decode`` (``{record index: token-span triples}`` -> character
    triples per record), the gold triples the features could not hold (not found in the text,
    beyond ``max_len``), what was evaluated (``evaluated_on``), whether the dictionary baseline is
    scored (``data.baseline`` and not an overfit check) and its dictionary (``train_spo``)."""

    split: str
    records: list[TripleRecord]
    decode: Callable[[Mapping[int, Sequence[Any]]], list[list[dict[str, Any]]]]
    n_gold_not_found: int
    n_gold_beyond_max_len: int
    evaluated_on: str
    baseline: bool
    train_spo: list[list[tuple[str, str, str]]]


class TripleDataModule(CharDataModule):
    def __init__(
        self,
        train_file: str,
        eval_file: str,
        schema_file: str,
        vocab_file: str,
        train_slice: Sequence[int] | None = None,
        eval_slice: Sequence[int] | None = None,
        val_records: int = 200,
        max_len: int = 128,
        batch_size: int = 64,
        eval_batch_size: int = 64,
        max_train_records: int | None = None,
        max_eval_records: int | None = None,
        overfit_records: int | None = None,
        subject_sampling: str = "post",
        pool_batches: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "none",
        baseline: bool = True,
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        max_triples_not_found_fraction: float = 0.01,
        tokenizer: str = "char",
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        if max_len < 3:
            raise ConfigError("data.max_len", f"must be >= 3 (room for [CLS], [SEP] and a character), got {max_len}")
        if subject_sampling not in ("post", "gold"):
            raise ConfigError("data.subject_sampling", f"must be 'post' or 'gold', got {subject_sampling!r}")
        if val_records < 1:
            raise ConfigError("data.val_records", f"must be >= 1, got {val_records}")
        if not 0 <= max_triples_not_found_fraction <= 1:
            raise ConfigError(
                "data.max_triples_not_found_fraction", f"must be in [0, 1], got {max_triples_not_found_fraction}"
            )
        self.predicates: list[str] = []
        self.predicate_id: dict[str, int] = {}
        self.features: dict[str, list[dict[str, Any]]] = {}
        self.records: dict[str, list[TripleRecord]] = {}
        self.evaluated_on: str = "held-out records"
        #: the (s, p, o) triples of every training record (the dictionary baseline's dictionary)
        self.train_spo: list[list[tuple[str, str, str]]] = []
        #: per split: the first record with a gold triple not found in its text, and that triple
        self.first_not_found: dict[str, tuple[TripleRecord, tuple[str, str, str]]] = {}

    # ------------------------------------------------------------------ reading
    def _read_schema(self) -> None:
        if not self.predicates:
            self.predicates = read_schema(self.hparams.schema_file)
            self.predicate_id = {p: i for i, p in enumerate(self.predicates)}

    @staticmethod
    def _slice(records: list[TripleRecord], sl: Sequence[int] | None, key: str) -> list[TripleRecord]:
        if sl is None:
            return records
        if len(sl) != 2:
            raise ConfigError(key, f"expected [start, end), got {list(sl)}")
        return records[int(sl[0]) : int(sl[1]) if sl[1] is not None else None]

    def setup(self, stage: str | None = None) -> None:
        fitting = stage in (None, "fit")
        if "test" in self.features and (not fitting or "train" in self.features):
            return
        hp = self.hparams
        self._read_schema()
        stats: Counter = Counter()
        train, tstats = read_triples(hp.train_file, self.predicates)
        train = self._slice(train, hp.train_slice, "data.train_slice")
        if hp.overfit_records:
            train = train[: int(hp.overfit_records)]
            evals = {"val": train, "test": train}
            self.evaluated_on = "training records (overfit check)"
        else:
            if hp.max_train_records:
                train = train[: int(hp.max_train_records)]
            if hp.max_train_chars:  # the debug configs' budget knob: first records up to N characters
                total, keep = 0, 0
                for r in train:
                    total += len(r.text)
                    if total > int(hp.max_train_chars):
                        break
                    keep += 1
                train = train[: max(1, keep)]
            if os.path.abspath(hp.eval_file) == os.path.abspath(hp.train_file) and hp.eval_slice is None:
                raise ConfigError("data.eval_slice", "eval_file is the training file: give train_slice and eval_slice")
            ev, _ = read_triples(hp.eval_file, self.predicates)
            ev = self._slice(ev, hp.eval_slice, "data.eval_slice")
            if len(ev) <= hp.val_records:
                raise ConfigError(
                    "data.val_records", f"{hp.val_records} selection records leave no test record of {len(ev)}"
                )
            evals = {"val": ev[: hp.val_records], "test": ev[hp.val_records :]}
            limit = hp.max_eval_records or hp.max_eval_sentences
            if limit:
                evals = {k: v[: int(limit)] for k, v in evals.items()}
        stats["object_slots_ignored"] = tstats.get("object_slots_ignored", 0)
        self.train_spo = [r.spo_list for r in train]
        self.build_tokenizer(r.text for r in train)
        if fitting:
            self.records["train"] = train
            self.features["train"], tr = self._train_features(train)
            self._check_not_found("train", tr)
            stats.update({f"train_{k}": v for k, v in tr.items()})
        for split, recs in evals.items():
            self.records[split] = recs
            self.features[split], ev_stats = self._eval_features(recs, split)
            self._check_not_found(split, ev_stats)
            stats.update({f"{split}_{k}": v for k, v in ev_stats.items()})
        stats["num_predicates"] = len(self.predicates)
        stats["vocab_size"] = len(self.ensure_tokenizer())
        self.stats = dict(stats)
        log.info("%s data: %s", type(self).__name__, self.stats)
        for split in ("train", "val", "test"):
            lost = sum(
                self.stats.get(f"{split}_triples_{why}", 0) for why in ("not_found", "beyond_max_len", "inside_token")
            )
            if lost:
                log.warning(
                    "%s: %d of %d gold triples cannot be located in the %d-token inputs (%d not found, %d beyond "
                    "max_len, %d with a boundary inside a WordPiece token)%s; not found (and inside a token) is "
                    "refused above data.max_triples_not_found_fraction=%g",
                    split,
                    lost,
                    self.stats.get(f"{split}_triples", 0),
                    hp.max_len,
                    self.stats.get(f"{split}_triples_not_found", 0),
                    self.stats.get(f"{split}_triples_beyond_max_len", 0),
                    self.stats.get(f"{split}_triples_inside_token", 0),
                    ": dropped from training" if split == "train" else ": kept in the gold set (scored as missed)",
                    hp.max_triples_not_found_fraction,
                )

    def _check_not_found(self, split: str, counts: Counter) -> None:
        """Refuse a split whose gold triples are not found in their texts more often than
        ``max_triples_not_found_fraction`` (and more than once): see the module doc."""
        n, total = counts["triples_not_found"], counts["triples"]
        frac = self.hparams.max_triples_not_found_fraction
        inside = counts["triples_inside_token"]
        if inside > max(1, frac * total):
            raise DataError(
                self.records[split][0].path if self.records.get(split) else self.hparams.train_file,
                None,
                f"{inside} of {total} gold triples of the {split} records ({inside / total:.0%}) have a subject or "
                f"object whose boundary falls inside a WordPiece token, more than "
                f"data.max_triples_not_found_fraction={frac:g}; data.tokenizer=char locates every one",
            )
        if n <= max(1, frac * total):
            return
        rec, (s, p, o) = self.first_not_found[split]
        fate = "dropped from training" if split == "train" else "scored as missed"
        raise DataError(
            rec.path,
            rec.line,
            f"{n} of {total} gold triples of the {split} records ({n / total:.0%}) have a subject or object that is "
            f"not in their text (first: ({s!r}, {p!r}, {o!r})), more than "
            f"data.max_triples_not_found_fraction={frac:g}; they would be {fate}; wrong file?",
        )

    def _train_features(self, records: list[TripleRecord]) -> tuple[list[dict[str, Any]], Counter]:
        assert self.tokenizer is not None
        feats: list[dict[str, Any]] = []
        c: Counter = Counter(records=len(records))
        for r in records:
            enc, full = encode_cut_spans(self.tokenizer, r.text, self.hparams.max_len)
            ids = enc.ids
            c["texts_cut"] += len(full) > len(ids)
            missing: list[tuple[str, str, str]] = []
            spoes, counts = self._locate(r.text, enc, full, r.spo_list, missing)
            if missing:
                self.first_not_found.setdefault("train", (r, missing[0]))
            c["triples"] += len(r.spo_list)
            c["triples_located"] += counts["located"]
            c["triples_not_found"] += counts["not_found"]
            c["triples_beyond_max_len"] += counts["beyond_max_len"]
            if counts["inside_token"]:
                c["triples_inside_token"] += counts["inside_token"]
            if not spoes:
                c["records_dropped_no_triple"] += 1
                continue
            feats.append({"input_ids": ids, "spoes": spoes, "index": len(feats)})
        c["features"] = len(feats)
        c["tokens"] = sum(len(f["input_ids"]) for f in feats)
        return feats, c

    def _eval_features(
        self, records: list[TripleRecord], split: str = "predict"
    ) -> tuple[list[dict[str, Any]], Counter]:
        assert self.tokenizer is not None
        feats: list[dict[str, Any]] = []
        c: Counter = Counter(records=len(records))
        for i, r in enumerate(records):
            enc, full = encode_cut_spans(self.tokenizer, r.text, self.hparams.max_len)
            c["texts_cut"] += len(full) > len(enc.ids)
            if r.spo_list:
                missing: list[tuple[str, str, str]] = []
                _, counts = self._locate(r.text, enc, full, r.spo_list, missing)
                if missing:
                    self.first_not_found.setdefault(split, (r, missing[0]))
                c["triples"] += len(r.spo_list)
                c["triples_not_found"] += counts["not_found"]
                c["triples_beyond_max_len"] += counts["beyond_max_len"]
                if counts["inside_token"]:
                    c["triples_inside_token"] += counts["inside_token"]
            feats.append({"input_ids": enc.ids, "offsets": enc.offsets, "ends": enc.ends, "index": i})
        return feats, c

    def _locate(
        self,
        text: str,
        enc: Encoding,
        full_ids: list[int],
        spo_list: Sequence[tuple[str, str, str]],
        missing: list[tuple[str, str, str]],
    ) -> tuple[dict[tuple[int, int], list[tuple[int, int, int]]], Counter]:
        """The triples' token spans in the cut input: the post's search of token ids (char mode)
        or by characters through the offsets (WordPiece; see the module doc)."""
        assert self.tokenizer is not None
        if not self.wordpiece:
            return locate_triples(self.tokenizer, enc.ids, full_ids, spo_list, self.predicate_id, missing)
        full = enc if len(full_ids) == len(enc.ids) else self.tokenizer.encode(text)
        return locate_triples_by_offsets(text, full, len(enc.ids), spo_list, self.predicate_id, missing)

    # ------------------------------------------------------------------ loaders
    def _epoch(self) -> int:
        trainer = self.trainer
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        assert self.tokenizer is not None
        feats = self.features["train"]
        sampler = BucketBatchSampler(
            [len(f["input_ids"]) for f in feats],
            self.hparams.batch_size,
            shuffle=True,
            pool_batches=self.hparams.pool_batches,
            seed=self.hparams.seed,
        )
        collate = TripleCollator(
            self.tokenizer.pad_id,
            len(self.predicates),
            self.hparams.seed,
            self.hparams.subject_sampling,
            epoch_fn=self._epoch,
        )
        return ResumableDataLoader(
            feats,  # type: ignore[arg-type]  # a list is a map-style dataset; torch declares Dataset
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.hparams.num_workers,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        assert self.tokenizer is not None
        feats = self.features[split]
        sampler = BucketBatchSampler([len(f["input_ids"]) for f in feats], self.hparams.eval_batch_size, shuffle=False)
        pad = self.tokenizer.pad_id
        return DataLoader(
            [{"input_ids": f["input_ids"], "index": f["index"]} for f in feats],  # type: ignore[arg-type]  # a list is a map-style dataset; torch declares Dataset
            batch_sampler=sampler,
            collate_fn=partial(pad_collate, pad_id=pad),
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def model_kwargs(self) -> dict[str, Any]:
        return {**super().model_kwargs(), "num_predicates": len(self.predicates)}

    def eval_data(self, split: str) -> TriplesEvalData:
        """What scoring ``split`` reads (after ``setup``)."""
        hp = self.hparams
        return TriplesEvalData(
            split=split,
            records=self.records[split],
            decode=partial(self.decode, split),
            n_gold_not_found=self.stats.get(f"{split}_triples_not_found", 0),
            n_gold_beyond_max_len=self.stats.get(f"{split}_triples_beyond_max_len", 0),
            evaluated_on=self.evaluated_on,
            baseline=bool(hp["baseline"] and not hp["overfit_records"]),
            train_spo=self.train_spo,
        )

    # ------------------------------------------------------------------ predictions
    def set_predict_texts(self, texts: Sequence[str]) -> None:
        """Raw texts for ``predict_dataloader`` / ``decode("predict", ...)``."""
        self._read_schema()
        self.ensure_tokenizer()
        self.records["predict"] = [TripleRecord(t, []) for t in texts]
        self.features["predict"], _ = self._eval_features(self.records["predict"])

    def decode(self, split: str, predictions: Mapping[int, Sequence[TokenTriple]]) -> list[list[dict[str, Any]]]:
        """Token-span triples per record -> triples with [start, end) character offsets into
        the record's text; spans on [CLS]/[SEP] are dropped, duplicates removed."""
        out: list[list[dict[str, Any]]] = []
        for i, rec in enumerate(self.records[split]):
            offsets, ends = self.features[split][i]["offsets"], self.features[split][i]["ends"]
            seen, triples = set(), []
            for s0, s1, p, o0, o1 in predictions.get(i, []):
                n = len(offsets)
                if not all(0 <= k < n and offsets[k] >= 0 for k in (s0, s1, o0, o1)) or s1 < s0 or o1 < o0:
                    continue
                ss, se, os_, oe = offsets[s0], ends[s1], offsets[o0], ends[o1]
                key = (ss, se, p, os_, oe)
                if key in seen:
                    continue
                seen.add(key)
                triples.append(
                    {
                        "subject": rec.text[ss:se],
                        "predicate": self.predicates[p],
                        "object": rec.text[os_:oe],
                        "subject_span": [ss, se],
                        "object_span": [os_, oe],
                    }
                )
            out.append(triples)
        return out

    def format_prediction(self, text: str, triples: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"text": text, "spo_list": triples}
        enc = self.tokenizer.encode(text) if self.tokenizer is not None else None
        if enc is not None and len(enc.ids) > self.hparams.max_len:
            out["truncated_at_char"] = enc.ends[self.hparams.max_len - 2]
        return out

    def save_outputs(self, split: str, outputs: list[Mapping[str, Any]], out_dir: str) -> list[str]:
        """One JSON line per record: text, gold (``spo_list``), then the record's output (the
        task's: ``spo_list_pred``, ``new`` = pred - gold, ``lack`` = gold - pred)."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_triples.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for rec, out in zip(self.records[split], outputs):
                row = {"text": rec.text, "spo_list": [list(t) for t in rec.spo_list], **out}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return [path]
