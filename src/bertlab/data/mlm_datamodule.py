"""Masked-LM batches over the pretraining corpus (:mod:`bertlab.data.pretraining_corpus`).

* Tokens: one per non-space character (:class:`~bertlab.data.tokenization.CharTokenizer`,
  as every task of bertlab tokenizes), over the vocabulary trimmed by ``trim_vocab``
  (:func:`bertlab.data.vocab.trim_vocab`; ``corpus`` keeps the specials, every token of the
  training texts and every CJK character).
* Masking (:class:`MlmMasker`, BERT's recipe): ``mask_prob`` (15%) of the non-special tokens
  of every sequence, rounded, at least one, are prediction targets; each target is replaced
  by [MASK] with probability 0.8, by a random non-special token with 0.1, and kept with 0.1.
  With ``whole_word_masking`` the targets are whole words (People's Daily segmentation;
  texts without segmentation count each character as a word): words are taken in random
  order while they fit in the budget (Google's wwm rule). [CLS]/[SEP]/[PAD] are never targets.
  Training masks are drawn afresh for every batch (dynamic masking) from a generator seeded
  with ``seed``; the held-out masks are drawn once, from ``seed`` too, so validation is
  identical from run to run and from one validation to the next.
* Two kinds of training steps (:class:`MixedBatchSampler`): a fraction ``packed_fraction``
  (default 0.2, exactly that share of the steps, evenly spread) are batches of
  ``packed_batch_size`` sequences of exactly ``pack_len`` (512) tokens, each
  ``[CLS] text [SEP] next text [SEP] ... [SEP]`` over consecutive corpus texts (the last one
  cut where the sequence is full and continued in the next); the other steps are
  length-bucketed batches of ``batch_size`` single texts (``[CLS] text [SEP]``, texts longer
  than ``max_len - 2`` characters cut at punctuation / word boundaries).
* Held out: the texts whose SHA-1 puts them in the first ``val_fraction`` (1%) of the hash
  range, at most ``max_val_texts`` of them; never trained on. Validation reports MLM loss and
  accuracy on their fixed masked positions.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from bertlab.data.base import CharDataModule
from bertlab.data.cws import split_text, split_words
from bertlab.data.pretraining_corpus import SOURCES, CorpusText, build_pretraining_corpus
from bertlab.data.samplers import BucketBatchSampler, ResumableDataLoader, ResumablePosition, rank_slice, resolve_shard
from bertlab.utils.errors import ConfigError

log = logging.getLogger(__name__)

IGNORE = -100  # label of positions that are not prediction targets


# --------------------------------------------------------------------------- masking
class MlmMasker:
    """BERT's masking of one sequence; pure numpy, so it is cheap to test exhaustively.

    Args:
        mask_id: the [MASK] id.
        random_ids: the ids a "random token" is drawn from (the non-special tokens).
        mask_prob: share of the candidate tokens that become targets.
        mask_token_prob / random_token_prob: of the targets, replaced by [MASK] / a random
            token (the rest keep their token).
        whole_word: targets are whole words (``word_ids`` groups tokens into words).
    """

    def __init__(
        self,
        mask_id: int,
        random_ids: Sequence[int],
        mask_prob: float = 0.15,
        mask_token_prob: float = 0.8,
        random_token_prob: float = 0.1,
        whole_word: bool = True,
    ):
        if not 0 < mask_prob < 1:
            raise ConfigError("data.mask_prob", f"must be in (0, 1), got {mask_prob}")
        if mask_token_prob < 0 or random_token_prob < 0 or mask_token_prob + random_token_prob > 1:
            raise ConfigError(
                "data.mask_token_prob", "mask_token_prob and random_token_prob must be >= 0 with a sum <= 1"
            )
        self.mask_id = mask_id
        self.random_ids = np.asarray(random_ids, dtype=np.int64)
        self.mask_prob = mask_prob
        self.mask_token_prob = mask_token_prob
        self.random_token_prob = random_token_prob
        self.whole_word = whole_word

    def targets(self, word_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sorted positions of the prediction targets. ``word_ids``: -1 for special tokens,
        else the word of the token (consecutive tokens of one word share the id)."""
        cand = np.flatnonzero(word_ids >= 0)
        if cand.size == 0:
            return cand
        budget = max(1, int(round(cand.size * self.mask_prob)))
        if not self.whole_word:
            return np.sort(rng.choice(cand, size=budget, replace=False))
        _, first, inverse, sizes = np.unique(word_ids[cand], return_index=True, return_inverse=True, return_counts=True)
        chosen = np.zeros(sizes.size, dtype=bool)
        total = 0
        for w in rng.permutation(sizes.size):
            if total + sizes[w] <= budget:
                chosen[w] = True
                total += sizes[w]
                if total == budget:
                    break
        if total == 0:  # every word is longer than the budget: take one of them anyway
            chosen[rng.integers(sizes.size)] = True
        return cand[chosen[inverse]]

    def __call__(
        self, ids: np.ndarray, word_ids: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(masked input ids, labels): labels are the original ids at the targets, IGNORE elsewhere."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = self.targets(np.asarray(word_ids), rng)
        labels = np.full(ids.shape, IGNORE, dtype=np.int64)
        labels[pos] = ids[pos]
        out = ids.copy()
        r = rng.random(pos.size)
        out[pos[r < self.mask_token_prob]] = self.mask_id
        rand = pos[(r >= self.mask_token_prob) & (r < self.mask_token_prob + self.random_token_prob)]
        if rand.size:
            out[rand] = rng.choice(self.random_ids, size=rand.size)
        return out, labels


# --------------------------------------------------------------------------- packing
def pack_sequences(
    pieces: Sequence[tuple[np.ndarray, np.ndarray]], pack_len: int, cls_id: int, sep_id: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pack consecutive pieces (token ids without [CLS]/[SEP], word ids) into sequences of
    exactly ``pack_len`` tokens: ``[CLS] a [SEP] b [SEP] ... [SEP]``; a piece that does not fit
    is cut and continues in the next sequence; the final incomplete sequence is dropped.
    Word ids are renumbered per sequence (-1 on [CLS]/[SEP]), so words never merge across texts."""
    if pack_len < 3:
        raise ConfigError("data.pack_len", f"must be >= 3, got {pack_len}")
    out: list[tuple[np.ndarray, np.ndarray]] = []
    ids: list[np.ndarray] = [np.array([cls_id])]
    words: list[np.ndarray] = [np.array([-1])]
    used, next_word = 1, 0
    for tok, wid in pieces:
        start = 0
        while start < len(tok):
            room = pack_len - used - 1  # keep one slot for the [SEP] after this chunk
            take = min(room, len(tok) - start)
            chunk_w = wid[start : start + take]
            if take > 0:
                _, renum = np.unique(chunk_w, return_inverse=True)
                ids += [tok[start : start + take], np.array([sep_id])]
                words += [renum + next_word, np.array([-1])]
                next_word += int(renum.max()) + 1
                used += take + 1
                start += take
            if used >= pack_len - 1:  # full (a lone slot left cannot hold text + [SEP])
                seq = np.concatenate(ids)
                wseq = np.concatenate(words)
                if used == pack_len - 1:  # pad the one free slot with a [SEP]
                    seq, wseq = np.append(seq, sep_id), np.append(wseq, -1)
                out.append((seq.astype(np.int64), wseq.astype(np.int64)))
                ids, words, used, next_word = [np.array([cls_id])], [np.array([-1])], 1, 0
    return out


# --------------------------------------------------------------------------- batching
class MixedBatchSampler(ResumablePosition, Sampler[list[int]]):
    """Indices ``0..n_single-1`` are single texts (length-bucketed batches), the next
    ``n_packed`` are packed sequences. Step ``i`` of an epoch is packed exactly when
    ``ceil((i + 1) f) > ceil(i f)`` (``f = packed_fraction``): the first step is packed (a
    run meets its largest batches at once) and any window of steps holds the share ``f`` of
    packed steps up to one. An epoch is one pass over the single texts
    (``ceil(n_bucket_batches / (1 - f))`` steps); packed batches cycle through a reshuffled
    order whenever they run out. ``f = 1``: one pass over the packed sequences."""

    def __init__(
        self,
        single_lengths: Sequence[int],
        n_packed: int,
        batch_size: int,
        packed_batch_size: int,
        packed_fraction: float,
        pool_batches: int = 100,
        seed: int = 0,
    ):
        if not 0 <= packed_fraction <= 1:
            raise ConfigError("data.packed_fraction", f"must be in [0, 1], got {packed_fraction}")
        if packed_fraction > 0 and n_packed == 0:
            raise ConfigError("data.packed_fraction", "is > 0 but the corpus is too small for one packed sequence")
        if packed_fraction < 1 and not single_lengths:
            raise ConfigError("data.packed_fraction", "is < 1 but there is no single text")
        self.n_single = len(single_lengths)
        self.n_packed = n_packed
        self.packed_batch_size = packed_batch_size
        self.fraction = packed_fraction
        self.seed = seed
        self.epoch = 0
        self._init_position()
        self.buckets = (
            BucketBatchSampler(single_lengths, batch_size, shuffle=True, pool_batches=pool_batches, seed=seed)
            if single_lengths
            else None
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.buckets is not None:
            self.buckets.set_epoch(epoch)

    @staticmethod
    def is_packed_step(i: int, fraction: float) -> bool:
        return math.ceil((i + 1) * fraction - 1e-9) > math.ceil(i * fraction - 1e-9)

    def _packed_batches(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 7919 + self.epoch)
        bs, (rank, world) = self.packed_batch_size, resolve_shard(None, None)  # DDP: slice `rank` of W x bs
        while True:
            order = list(range(self.n_single, self.n_single + self.n_packed))
            rng.shuffle(order)
            for i in range(0, len(order), bs * world):
                yield rank_slice(order[i : i + bs * world], bs, rank, world)

    def __len__(self) -> int:
        if self.fraction >= 1:
            return -(-self.n_packed // (self.packed_batch_size * resolve_shard(None, None)[1]))
        n_bucket = len(self.buckets) if self.buckets is not None else 0
        return math.ceil(n_bucket / (1 - self.fraction))

    def state_dict(self) -> dict[str, int]:
        return {**self.position_state(), "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state is for seed {state['seed']}, this sampler has seed {self.seed}")
        self.load_position(state)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._positioned(self._epoch_batches())

    def _epoch_batches(self) -> Iterator[list[int]]:
        packed = self._packed_batches() if self.n_packed else None
        singles = iter(self.buckets.batches()) if self.buckets is not None else iter(())
        for i in range(len(self)):
            if self.fraction > 0 and self.is_packed_step(i, self.fraction):
                yield next(packed)
            else:
                batch = next(singles, None)
                if batch is None:  # rounding: fill the last steps with packed batches
                    batch = next(packed) if packed is not None else None
                if batch is None:
                    return
                yield batch


class _MaskingCollate:
    """The training collate: masks each batch with a generator seeded from (seed, the
    sampler's epoch, the batch's token ids), so a batch gets the same masks whatever ran
    before it: a resumed run (which skips the batches before its position) masks exactly as
    the uninterrupted run did."""

    def __init__(self, pad_id: int, masker: MlmMasker | None, seed: int, sampler: Any):
        self.pad_id, self.masker, self.seed, self.sampler = pad_id, masker, int(seed), sampler

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        digest = hashlib.blake2b(digest_size=8)
        for f in features:
            digest.update(np.asarray(f["input_ids"], dtype=np.int64).tobytes())
        key = int.from_bytes(digest.digest(), "little")
        rng = np.random.default_rng([self.seed, int(self.sampler.epoch), key])
        return mlm_collate(features, self.pad_id, self.masker, rng)


def mlm_collate(
    features: Sequence[dict[str, Any]],
    pad_id: int,
    masker: MlmMasker | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a batch; training features (``word_ids``) are masked here with ``masker``/``rng``,
    evaluation features carry their fixed ``labels`` already."""
    longest = max(len(f["input_ids"]) for f in features)
    n = len(features)
    input_ids = torch.full((n, longest), pad_id, dtype=torch.long)
    labels = torch.full((n, longest), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((n, longest), dtype=torch.bool)
    for i, f in enumerate(features):
        if "labels" in f:
            ids, lab = f["input_ids"], f["labels"]
        else:
            assert masker is not None and rng is not None
            ids, lab = masker(f["input_ids"], f["word_ids"], rng)
        k = len(ids)
        input_ids[i, :k] = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        labels[i, :k] = torch.from_numpy(np.asarray(lab, dtype=np.int64))
        attention_mask[i, :k] = True
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "packed": torch.tensor(bool(features[0].get("packed", False))),
    }


def _in_heldout(text: str, fraction: float) -> bool:
    h = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)
    return h < fraction * 16**12


# --------------------------------------------------------------------------- the DataModule
@dataclass(frozen=True)
class PretrainingEvalData:
    """What the pretraining task's export reads (:meth:`MlmDataModule.eval_data`): the held-out
    loader (None when there is no held-out split) and the number of held-out texts."""

    loader: Callable[[], DataLoader] | None
    held_out_texts: int | None


class MlmDataModule(CharDataModule):
    def __init__(
        self,
        vocab_file: str,
        pd_files: Sequence[str],
        pku_test_gold_file: str,
        sentiment_file: str,
        lic2019_train_file: str,
        lic2019_dev_file: str,
        cmrc_files: Sequence[str],
        extra_heldout_files: Sequence[str] = (),
        sources: Sequence[str] = SOURCES,
        max_len: int = 512,
        pack_len: int = 512,
        packed_fraction: float = 0.2,
        batch_size: int = 32,
        packed_batch_size: int = 8,
        eval_batch_size: int = 32,
        mask_prob: float = 0.15,
        mask_token_prob: float = 0.8,
        random_token_prob: float = 0.1,
        whole_word_masking: bool = True,
        val_fraction: float = 0.01,
        max_val_texts: int | None = 1000,
        max_train_texts: int | None = None,
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        pool_batches: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "corpus",
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        if max_len < 3:
            raise ConfigError("data.max_len", f"must be >= 3, got {max_len}")
        if not 0 < val_fraction < 1:
            raise ConfigError("data.val_fraction", f"must be in (0, 1), got {val_fraction}")
        self.masker: MlmMasker | None = None
        self.features: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ reading
    def read_corpus(self) -> tuple[list[CorpusText], list[CorpusText]]:
        """(training texts, held-out texts), both in corpus order."""
        hp = self.hparams
        corpus = build_pretraining_corpus(
            hp.pd_files,
            hp.pku_test_gold_file,
            hp.sentiment_file,
            hp.lic2019_train_file,
            hp.lic2019_dev_file,
            hp.cmrc_files,
            hp.extra_heldout_files,
            hp.sources,
        )
        self.stats.update({f"corpus_{k}": v for k, v in corpus.stats().items()})
        train, val = [], []
        for item in corpus.texts:
            (val if _in_heldout(item.text, hp.val_fraction) else train).append(item)
        for cap in (hp.max_val_texts, hp.max_eval_sentences):
            if cap is not None:
                val = val[: int(cap)]
        if hp.max_train_texts is not None or hp.max_train_chars is not None:
            order = list(range(len(train)))
            random.Random(hp.seed).shuffle(order)
            keep, chars = [], 0
            for i in order[: hp.max_train_texts]:
                chars += len(train[i].text)
                if hp.max_train_chars is not None and chars > hp.max_train_chars and keep:
                    break
                keep.append(i)
            train = [train[i] for i in sorted(keep)]
        if not val:
            raise ConfigError("data.val_fraction", "holds out no text: raise it")
        return train, val

    def _pieces(self, item: CorpusText) -> list[tuple[np.ndarray, np.ndarray]]:
        """Token ids (no [CLS]/[SEP]) and word ids of the pieces of one text that fit max_len."""
        assert self.tokenizer is not None
        n = self.hparams.max_len - 2
        if item.words is not None:
            parts = [(("".join(p)), p) for p in split_words(list(item.words), n)]
        else:
            parts = [(p, None) for p in split_text(item.text, n)]
        out = []
        for text, words in parts:
            if words is not None:
                char_word = np.repeat(np.arange(len(words)), [len(w) for w in words])
            else:
                char_word = np.arange(len(text))
            enc = self.tokenizer.encode(text)
            offs = np.asarray(enc.offsets[1:-1], dtype=np.int64)
            if offs.size == 0:
                continue
            out.append((np.asarray(enc.ids[1:-1], dtype=np.int64), char_word[offs]))
        return out

    def _single(self, tok: np.ndarray, wid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.tokenizer is not None
        ids = np.concatenate([[self.tokenizer.cls_id], tok, [self.tokenizer.sep_id]]).astype(np.int64)
        words = np.concatenate([[-1], wid - wid.min(), [-1]]).astype(np.int64)
        return ids, words

    def setup(self, stage: str | None = None) -> None:
        if "val" in self.features and (stage not in (None, "fit") or "train" in self.features):
            return
        hp = self.hparams
        train, val = self.read_corpus()
        tok = self.build_tokenizer(ch for item in train for ch in item.text)
        if "[MASK]" not in tok.vocab:
            raise ConfigError("encoder.vocab_file", f"{hp.vocab_file} has no [MASK] token")
        specials = {i for t, i in tok.vocab.items() if t.startswith("[") and t.endswith("]")}
        self.masker = MlmMasker(
            tok.vocab["[MASK]"],
            [i for i in range(len(tok)) if i not in specials],
            hp.mask_prob,
            hp.mask_token_prob,
            hp.random_token_prob,
            hp.whole_word_masking,
        )

        # held-out: single texts with masks drawn once, from the seed
        rng = np.random.default_rng([hp.seed, 1])
        self.features["val"] = []
        for item in val:
            for piece in self._pieces(item):
                ids, words = self._single(*piece)
                masked, labels = self.masker(ids, words, rng)
                self.features["val"].append({"input_ids": masked, "labels": labels})
        self.stats["val_texts"] = len(val)
        self.stats["val_targets"] = int(sum((f["labels"] != IGNORE).sum() for f in self.features["val"]))
        if stage in (None, "fit"):
            pieces = [p for item in train for p in self._pieces(item)]
            singles = [dict(zip(("input_ids", "word_ids"), self._single(*p))) for p in pieces]
            packed = (
                [
                    {"input_ids": i, "word_ids": w, "packed": True}
                    for i, w in pack_sequences(pieces, hp.pack_len, tok.cls_id, tok.sep_id)
                ]
                if hp.packed_fraction > 0
                else []
            )
            self.features["train"] = singles + packed
            self.n_single, self.n_packed = len(singles), len(packed)
            self.stats.update(
                train_texts=len(train),
                train_singles=len(singles),
                train_packed=len(packed),
                train_tokens=int(sum(len(f["input_ids"]) for f in singles)),
                train_unk_tokens=int(sum((f["input_ids"] == tok.unk_id).sum() for f in singles)),
            )
        self.stats["vocab_size"] = len(tok)
        log.info("MLM data: %s", self.stats)

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        assert self.tokenizer is not None
        lengths = [len(f["input_ids"]) for f in self.features["train"][: self.n_single]]
        sampler = MixedBatchSampler(
            lengths, self.n_packed, hp.batch_size, hp.packed_batch_size, hp.packed_fraction, hp.pool_batches, hp.seed
        )
        collate = _MaskingCollate(self.tokenizer.pad_id, self.masker, hp.seed, sampler)
        return ResumableDataLoader(
            self.features["train"], batch_sampler=sampler, collate_fn=collate, num_workers=hp.num_workers
        )

    def eval_data(self, split: str) -> PretrainingEvalData:
        """The held-out split (``val``) as the export measures it (after ``setup``)."""
        loader = self.val_dataloader if split == "val" and "val" in self.features else None
        return PretrainingEvalData(loader=loader, held_out_texts=self.stats.get(f"{split}_texts"))

    def val_dataloader(self) -> DataLoader:
        assert self.tokenizer is not None
        feats = self.features["val"]
        sampler = BucketBatchSampler([len(f["input_ids"]) for f in feats], self.hparams.eval_batch_size, shuffle=False)
        return DataLoader(feats, batch_sampler=sampler, collate_fn=partial(mlm_collate, pad_id=self.tokenizer.pad_id))
