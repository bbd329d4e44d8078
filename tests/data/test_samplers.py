"""The training data position across a save/restore: BucketBatchSampler and
ResumableDataLoader (Lightning's _Stateful protocol), with and without worker prefetch."""

from __future__ import annotations

import pytest
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from lightning_fabric.utilities.types import _Stateful
from torch.utils.data import DataLoader

from bertlab.data.samplers import BucketBatchSampler, ResumableDataLoader

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


def test_a_position_applies_to_its_own_epoch_only():
    """Saved after the last batch of epoch 1: a pass over epoch 1 draws nothing more, the
    next epoch (what Lightning starts after an end-of-epoch checkpoint) is whole. The old
    sampler moved itself to the next epoch on load, and Lightning, which counts epochs
    itself, then skipped one (issue 27 item 1)."""
    dl = _loader()
    dl.batch_sampler.set_epoch(1)
    n = len(list(dl))
    state = dl.state_dict()
    assert state["sampler"] == {"epoch": 1, "yielded": n, "seed": 5, "world_size": 1}
    same = _loader()
    same.load_state_dict(state)
    assert list(same) == []
    fresh = _loader()
    fresh.load_state_dict(state)
    _set_sampler_epoch(fresh, 2)  # what Lightning calls at the start of every epoch
    ref = _loader()
    ref.batch_sampler.set_epoch(2)
    assert [b.tolist() for b in fresh] == [b.tolist() for b in ref]


def test_lightning_sets_the_epoch_and_the_epoch_is_read_at_the_first_batch():
    """Lightning calls set_epoch on ``loader.batch_sampler.sampler`` (never on a batch sampler),
    after it created the iterator: the order must be that epoch's."""
    dl = _loader()
    it = iter(dl)  # Lightning's setup_data creates the iterator first
    _set_sampler_epoch(dl, 3)
    ref = _loader()
    ref.batch_sampler.set_epoch(3)
    assert [b.tolist() for b in it] == [b.tolist() for b in ref]
    assert dl.batch_sampler.epoch == 3


def test_epochs_differ_and_seeds_differ():
    a, b = _loader(), _loader()
    b.batch_sampler.set_epoch(1)
    assert [x.tolist() for x in a] != [x.tolist() for x in b]
    c = _loader(seed=6)
    assert [x.tolist() for x in _loader()] != [x.tolist() for x in c]
    with pytest.raises(ValueError, match="seed"):
        c.load_state_dict(_loader().state_dict())


def test_every_training_loader_is_stateful():
    """Every DataModule's training loader saves its position (Lightning's _Stateful), the
    evaluation loaders are plain."""
    from bertlab.data.samplers import BucketedSplitLoaders

    class Split(BucketedSplitLoaders):
        hparams = type("H", (), {"batch_size": 4, "eval_batch_size": 4, "pool_batches": 2, "seed": 0, "num_workers": 0})
        features = {s: [{"input_ids": [1] * (i % 5 + 1)} for i in range(20)] for s in ("train", "val")}

        def collate_fn(self, train):
            return lambda items: items

    dm = Split()
    assert isinstance(dm.train_dataloader(), _Stateful) and isinstance(dm.train_dataloader(), ResumableDataLoader)
    assert type(dm.val_dataloader()) is DataLoader
