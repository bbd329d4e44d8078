"""The length-bucketing samplers under DDP, with W = 2 and 3 simulated ranks: disjoint rank
batches that together cover the epoch (the one short global batch padded by repeats), the
order a function of (seed, epoch), ``len`` = ceil(batches / W), and a rank's position saved
and restored mid-epoch. Every training sampler of the DataModules is covered: the bucket
sampler (CWS, NER, sentiment, generation), the triples' epoch-following subclass, the MRC
random batches and the MLM mixed single/packed sampler."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bertlab.data import samplers
from bertlab.data.mlm_datamodule import MixedBatchSampler
from bertlab.data.samplers import BucketBatchSampler, random_batch_sampler, rank_slice

LENGTHS = [random.Random(5).randint(1, 60) for _ in range(1003)]  # 1003: not a multiple of W x B


def _draw(make, world: int, monkeypatch) -> list[list[list[int]]]:
    """Each simulated rank's batches of one epoch (torch.distributed's rank/world patched)."""
    out = []
    for rank in range(world):
        monkeypatch.setattr(samplers, "dist_rank_world", lambda r=rank: (r, world))
        s = make()
        out.append(list(s))
        assert len(out[-1]) == len(s)
    return out


def _check_cover(per_rank: list[list[list[int]]], n: int, batch_size: int, world: int) -> None:
    steps = {len(b) for b in per_rank}
    assert len(steps) == 1  # every rank the same number of steps (DDP needs it)
    counts = Counter(i for rank in per_rank for batch in rank for i in batch)
    assert set(counts) == set(range(n))  # the epoch is covered
    twice = sum(c - 1 for c in counts.values())
    assert twice <= (world - 1) * batch_size  # only the padding of the one short global batch repeats
    # steps t of the ranks are disjoint except in the padded step
    overlapping = [
        t for t in range(steps.pop()) if len({i for r in per_rank for i in r[t]}) < sum(len(r[t]) for r in per_rank)
    ]
    assert len(overlapping) <= 1


@pytest.mark.parametrize("world", [2, 3])
def test_bucket_ranks_are_disjoint_cover_the_epoch_and_take_ceil_batches_over_w_steps(world, monkeypatch):
    b = 8
    per_rank = _draw(lambda: BucketBatchSampler(LENGTHS, b, pool_batches=5, seed=3), world, monkeypatch)
    _check_cover(per_rank, len(LENGTHS), b, world)
    n_batches = -(-len(LENGTHS) // b)
    assert len(per_rank[0]) == -(-n_batches // world)
    # explicit arguments give the same as torch.distributed's rank
    explicit = [
        list(BucketBatchSampler(LENGTHS, b, pool_batches=5, seed=3, rank=r, world_size=world)) for r in range(world)
    ]
    assert explicit == per_rank


def test_one_rank_is_the_one_process_order_and_w_ranks_split_the_batches_of_w_x_b():
    one = BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3)
    assert list(one) == list(BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3, rank=0, world_size=1))
    big = list(BucketBatchSampler(LENGTHS, 16, pool_batches=5, seed=3, world_size=1))
    r0 = list(BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3, rank=0, world_size=2))
    r1 = list(BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3, rank=1, world_size=2))
    full = [t for t, g in enumerate(big) if len(g) == 16]
    assert len(full) == len(big) - 1
    for t in full:
        assert r0[t] + r1[t] == big[t]


def test_order_depends_on_seed_and_epoch_only():
    def draw(seed, epoch, rank):
        s = BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=seed, rank=rank, world_size=2)
        s.set_epoch(epoch)
        return list(s)

    assert draw(1, 2, 0) == draw(1, 2, 0)
    assert draw(1, 2, 0) != draw(1, 3, 0) and draw(1, 2, 0) != draw(2, 2, 0)


def test_rank_resumes_mid_epoch_and_refuses_another_world_size():
    s = BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3, rank=1, world_size=3)
    s.set_epoch(1)
    full = list(s)
    it = iter(s)
    for _ in range(7):
        next(it)
    state = s.state_dict()
    assert state == {"epoch": 1, "yielded": 7, "seed": 3, "world_size": 3}
    fresh = BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3, rank=1, world_size=3)
    fresh.load_state_dict(state)
    assert list(fresh) == full[7:]
    other = BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3, rank=0, world_size=2)
    with pytest.raises(ValueError, match="saved with 3"):
        other.load_state_dict(state)


def test_evaluation_samplers_are_never_sharded(monkeypatch):
    monkeypatch.setattr(samplers, "dist_rank_world", lambda: (1, 2))
    s = BucketBatchSampler(LENGTHS, 8, shuffle=False)
    assert sorted(i for b in s for i in b) == list(range(len(LENGTHS)))


@pytest.mark.parametrize("world", [2, 3])
def test_triples_and_mrc_training_samplers_are_sharded(world, monkeypatch):
    def triples():
        s = BucketBatchSampler(LENGTHS, 8, pool_batches=5, seed=3)  # the triples training sampler
        s.set_epoch(2)
        return s

    _check_cover(_draw(triples, world, monkeypatch), len(LENGTHS), 8, world)
    per_rank = _draw(lambda: random_batch_sampler(101, 4, seed=9), world, monkeypatch)
    _check_cover(per_rank, 101, 4, world)
    assert len(per_rank[0]) == -(-26 // world)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_mlm_mixed_sampler_is_sharded(world, fraction, monkeypatch):
    singles, n_packed = LENGTHS[:300], 37

    def make():
        return MixedBatchSampler(singles, n_packed, batch_size=8, packed_batch_size=4, packed_fraction=fraction, seed=1)

    per_rank = _draw(make, world, monkeypatch)
    assert len({len(r) for r in per_rank}) == 1
    drawn = Counter(i for r in per_rank for b in r for i in b)
    if fraction < 1:
        assert set(range(300)) <= set(drawn)  # every single text once per epoch (up to the padding)
        assert sum(drawn[i] - 1 for i in range(300)) <= (world - 1) * 8
    else:
        assert set(drawn) == set(range(300, 337)) and len(per_rank[0]) == -(-37 // (4 * world))
    # step t: packed on every rank or on none
    for t in range(len(per_rank[0])):
        assert len({per_rank[r][t][0] >= 300 for r in range(world)}) == 1


def test_rank_slice_pads_a_short_global_batch_with_repeats():
    assert rank_slice(list(range(10)), 4, 2, 3) == [8, 9]
    assert rank_slice(list(range(5)), 4, 2, 3) == [0, 1, 2, 3]  # only 2 pieces: rank 2 repeats piece 0
