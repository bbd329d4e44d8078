"""MLM batches: masking statistics, whole-word masking, packing to 512, step mix, determinism."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from bertlab.data.mlm_datamodule import IGNORE, MixedBatchSampler, MlmMasker, pack_sequences
from bertlab.utils.errors import ConfigError

MASK, CLS, SEP = 4, 2, 3
RANDOM_IDS = np.arange(10, 5010)  # 5,000 "normal" tokens: a random draw equals the original with p 1/5000


def _rows(rng, n_rows=400, lo=20, hi=300):
    """Sequences [CLS] tokens [SEP] with word ids (-1 on the specials), words of 1-4 tokens."""
    out = []
    for _ in range(n_rows):
        n = int(rng.integers(lo, hi))
        ids = np.concatenate([[CLS], rng.integers(10, 5010, n), [SEP]])
        sizes = []
        while sum(sizes) < n:
            sizes.append(int(rng.integers(1, 5)))
        sizes[-1] -= sum(sizes) - n
        sizes = [s for s in sizes if s > 0]
        words = np.concatenate([[-1], np.repeat(np.arange(len(sizes)), sizes), [-1]])
        out.append((ids, words))
    return out


@pytest.mark.parametrize("whole_word", [False, True])
def test_masking_statistics(whole_word):
    rng = np.random.default_rng(0)
    masker = MlmMasker(MASK, RANDOM_IDS, whole_word=whole_word)
    kinds = Counter()
    n_targets = n_cand = 0
    for ids, words in _rows(np.random.default_rng(1)):
        out, labels = masker(ids, words, rng)
        target = labels != IGNORE
        cand = int((words >= 0).sum())
        budget = round(0.15 * cand)
        if whole_word:
            assert 0 < target.sum() <= budget
        else:
            assert target.sum() == budget
        # never a special token; non-targets untouched; labels are the original tokens
        assert not target[words < 0].any() and (out[words < 0] == ids[words < 0]).all()
        assert (out[~target] == ids[~target]).all() and (labels[target] == ids[target]).all()
        t_out, t_ids = out[target], ids[target]
        kinds["mask"] += int((t_out == MASK).sum())
        kinds["keep"] += int((t_out == t_ids).sum())
        kinds["random"] += int(((t_out != MASK) & (t_out != t_ids)).sum())
        assert np.isin(t_out[(t_out != MASK) & (t_out != t_ids)], RANDOM_IDS).all()
        n_targets += int(target.sum())
        n_cand += cand
    total = sum(kinds.values())
    assert total == n_targets > 8000
    assert kinds["mask"] / total == pytest.approx(0.8, abs=0.015)
    assert kinds["random"] / total == pytest.approx(0.1, abs=0.01)
    assert kinds["keep"] / total == pytest.approx(0.1, abs=0.01)
    # 15% of the tokens (wwm: words that do not fit the budget are skipped, so a little less)
    assert n_targets / n_cand == pytest.approx(0.15, abs=0.002 if not whole_word else 0.01)


def test_whole_word_masking_masks_whole_words():
    rng = np.random.default_rng(3)
    masker = MlmMasker(MASK, RANDOM_IDS, whole_word=True)
    for ids, words in _rows(np.random.default_rng(4), n_rows=200):
        _, labels = masker(ids, words, rng)
        target = labels != IGNORE
        for w in np.unique(words[words >= 0]):
            members = target[words == w]
            assert members.all() or not members.any(), "a word is partly masked"
    # characters as words: the same as token-level masking
    ids = np.arange(100, 140)
    chars = np.arange(40)
    _, labels = masker(ids, chars, np.random.default_rng(0))
    assert (labels != IGNORE).sum() == 6


def test_masks_are_reproducible_from_the_seed():
    masker = MlmMasker(MASK, RANDOM_IDS)
    rows = _rows(np.random.default_rng(5), n_rows=20)
    a = [masker(i, w, np.random.default_rng(7)) for i, w in rows]
    b = [masker(i, w, np.random.default_rng(7)) for i, w in rows]
    c = [masker(i, w, np.random.default_rng(8)) for i, w in rows]
    assert all((x[0] == y[0]).all() and (x[1] == y[1]).all() for x, y in zip(a, b))
    assert any((x[1] != y[1]).any() for x, y in zip(a, c))


def test_bad_masking_probabilities_are_config_errors():
    with pytest.raises(ConfigError, match="data.mask_prob"):
        MlmMasker(MASK, RANDOM_IDS, mask_prob=0.0)
    with pytest.raises(ConfigError, match="data.mask_token_prob"):
        MlmMasker(MASK, RANDOM_IDS, mask_token_prob=0.95, random_token_prob=0.1)


def test_packed_sequences_fill_512_with_consecutive_texts():
    rng = np.random.default_rng(0)
    pieces = []
    for _k in range(300):
        n = int(rng.integers(1, 200))
        pieces.append((rng.integers(10, 5000, n), np.arange(n) // 2))  # two-token words
    packed = pack_sequences(pieces, 512, CLS, SEP)
    total = sum(len(p[0]) for p in pieces)
    assert len(packed) >= total // 512 - 1
    stream = []
    for ids, words in packed:
        assert len(ids) == 512 and len(words) == 512
        assert ids[0] == CLS and ids[-1] == SEP
        assert ((ids == CLS) | (ids == SEP)).tolist() == (words < 0).tolist()
        # words never span a [SEP]; ids of one word are contiguous
        for w in np.unique(words[words >= 0]):
            pos = np.flatnonzero(words == w)
            assert (np.diff(pos) == 1).all() and len(pos) <= 2
        stream.extend(ids[(ids != CLS) & (ids != SEP)].tolist())
    flat = np.concatenate([p[0] for p in pieces]).tolist()
    assert stream == flat[: len(stream)] and len(flat) - len(stream) < 512  # in order, only the tail dropped


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.35, 1.0])
def test_mixed_sampler_step_shares(fraction):
    lengths = list(np.random.default_rng(0).integers(5, 100, 1000))
    sampler = MixedBatchSampler(lengths, n_packed=37, batch_size=16, packed_batch_size=4, packed_fraction=fraction)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    packed = [b for b in batches if b[0] >= 1000]
    assert all(all(i >= 1000 for i in b) or all(i < 1000 for i in b) for b in batches)
    assert len(packed) >= math.floor(fraction * len(batches))
    if 0 < fraction < 1:
        assert len(packed) / len(batches) == pytest.approx(fraction, abs=0.01)
        # evenly spread: every window of 20 steps holds fraction * 20 packed steps, up to one
        flags = [b[0] >= 1000 for b in batches]
        for s in range(0, len(flags) - 20):
            assert abs(sum(flags[s : s + 20]) - 20 * fraction) <= 1
    if fraction < 1:
        singles = sorted(i for b in batches if b[0] < 1000 for i in b)
        assert singles == list(range(1000))  # every single text once per epoch
    with pytest.raises(ConfigError, match="packed_fraction"):
        MixedBatchSampler(lengths, n_packed=0, batch_size=16, packed_batch_size=4, packed_fraction=0.2)


# ----------------------------------------------------------------------- the DataModule
@pytest.fixture(scope="module")
def datamodule(tmp_path_factory):
    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from tests.conftest import compose_cfg

    from bertlab.nn.encoders import resolve_vocab_file

    cfg = compose_cfg(
        tmp_path_factory.mktemp("mlm_dm"),
        ["experiment=pretrain_mlm", "data.max_train_texts=400", "data.max_val_texts=60"],
    )
    GlobalHydra.instance().clear()
    dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    dm.setup("fit")
    return dm, cfg


def test_real_batches(datamodule):
    dm, cfg = datamodule
    tok = dm.tokenizer
    assert len(tok) < 21128 and len(tok) == len(dm.keep_ids)  # the trimmed vocabulary
    specials = [tok.pad_id, tok.cls_id, tok.sep_id]
    batches = list(dm.train_dataloader())
    n_packed = 0
    targets = tokens = 0
    for b in batches:
        target = b["labels"] != IGNORE
        assert not target[~b["attention_mask"]].any()
        orig = torch.where(target, b["labels"], b["input_ids"])
        assert not torch.isin(orig[target], torch.tensor(specials)).any()  # no special token is a target
        targets += int(target.sum())
        tokens += int((b["attention_mask"] & ~torch.isin(orig, torch.tensor(specials))).sum())
        if bool(b["packed"]):
            n_packed += 1
            assert b["input_ids"].shape[1] == 512 and b["attention_mask"].all()  # packed rows fill 512
            assert (b["input_ids"][:, 0] == tok.cls_id).all() and (b["input_ids"][:, -1] == tok.sep_id).all()
    assert n_packed >= 0.2 * len(batches) - 1e-9 and n_packed > 0
    assert targets / tokens == pytest.approx(0.15, abs=0.01)


def test_validation_masks_are_fixed(datamodule):
    dm, cfg = datamodule
    first = list(dm.val_dataloader())
    again = list(dm.val_dataloader())
    assert all(
        torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        for a, b in zip(first, again)
    )
    assert sum(int((b["labels"] != IGNORE).sum()) for b in first) == dm.stats["val_targets"] > 100
    # held-out texts are never in training
    val_rows = {
        tuple(torch.where(b["labels"] != IGNORE, b["labels"], b["input_ids"])[i][b["attention_mask"][i]].tolist())
        for b in first
        for i in range(len(b["input_ids"]))
    }
    train_rows = {tuple(f["input_ids"].tolist()) for f in dm.features["train"][: dm.n_single]}
    assert not val_rows & train_rows
