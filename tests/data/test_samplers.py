"""The training data position across a save/restore: BucketBatchSampler and
ResumableDataLoader (Lightning's _Stateful protocol), with and without worker prefetch."""

from __future__ import annotations

import pytest
import torch
from lightning_fabric.utilities.types import _Stateful
from torch.utils.data import DataLoader

from bertlab.data.samplers import BucketBatchSampler, ResumableDataLoader, make_resumable

LENGTHS = [(i * 7) % 50 + 1 for i in range(203)]


def _loader(cls=ResumableDataLoader, num_workers=0, seed=5):
    sampler = BucketBatchSampler(LENGTHS, 8, pool_batches=4, seed=seed)
    return cls(
        list(range(len(LENGTHS))),
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=lambda items: torch.tensor(items),
    )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_resumes_at_the_batches_it_delivered(num_workers):
    ref = _loader()
    ref.batch_sampler.set_epoch(3)
    full = [b.tolist() for b in ref]
    dl = _loader(num_workers=num_workers)
    dl.batch_sampler.set_epoch(3)
    it = iter(dl)
    head = [next(it).tolist() for _ in range(7)]  # workers have fetched further ahead
    state = dl.state_dict()
    del it
    assert state == {"sampler": {"epoch": 3, "yielded": 7, "seed": 5, "world_size": 1}}
    fresh = _loader(num_workers=num_workers)
    fresh.load_state_dict(state)
    rest = [b.tolist() for b in fresh]
    assert head + rest == full
    assert fresh.state_dict()["sampler"]["yielded"] == len(full)
    # the next pass is a whole epoch again
    fresh.batch_sampler.set_epoch(4)
    assert len(list(fresh)) == len(full)


def test_a_state_saved_at_the_end_of_an_epoch_starts_the_next_epoch():
    dl = _loader()
    dl.batch_sampler.set_epoch(1)
    n = len(list(dl))
    state = dl.state_dict()
    assert state["sampler"] == {"epoch": 1, "yielded": n, "seed": 5, "world_size": 1}
    fresh = _loader()
    fresh.load_state_dict(state)
    ref = _loader()
    ref.batch_sampler.set_epoch(2)
    assert [b.tolist() for b in fresh] == [b.tolist() for b in ref]


def test_epochs_differ_and_seeds_differ():
    a, b = _loader(), _loader()
    b.batch_sampler.set_epoch(1)
    assert [x.tolist() for x in a] != [x.tolist() for x in b]
    c = _loader(seed=6)
    assert [x.tolist() for x in _loader()] != [x.tolist() for x in c]
    with pytest.raises(ValueError, match="seed"):
        c.load_state_dict(_loader().state_dict())


def test_make_resumable_swaps_only_plain_loaders_with_a_stateful_sampler():
    plain = _loader(cls=DataLoader)
    assert not isinstance(plain, _Stateful)
    same = make_resumable(plain)
    assert same is plain and isinstance(plain, ResumableDataLoader) and isinstance(plain, _Stateful)
    it = iter(plain)
    next(it), next(it)
    assert plain.state_dict()["sampler"]["yielded"] == 2
    shuffled = DataLoader(list(range(10)), batch_size=2, shuffle=True)
    assert type(make_resumable(shuffled)) is DataLoader  # nothing to save: left alone
