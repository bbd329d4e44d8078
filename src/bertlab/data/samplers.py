"""Length-bucketed batching: little padding, random order.

Indices are shuffled, cut into pools of ``pool_batches * batch_size``, each pool is sorted by
length and cut into batches, and the batches are shuffled. Every epoch draws a new order
from ``seed + epoch``, so runs are reproducible, and the sampler's position (epoch, batches
handed out) is a ``state_dict`` so a resumed run continues with exactly the batches an
uninterrupted run would have seen.

Lightning saves and restores a training DataLoader's position only when the loader itself
has ``state_dict`` / ``load_state_dict`` (its ``_Stateful`` protocol; the state is loaded in
``fit_loop.setup_data`` before the first batch is drawn). A plain ``DataLoader`` restarts
the epoch from its first batch on resume, so :class:`ResumableDataLoader` is a DataLoader
whose state is the position of its (batch) sampler, counted in batches *delivered* to the
training loop (not the indices worker processes have prefetched), and
:func:`make_resumable` turns a plain DataLoader with such a sampler into one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Sampler


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        pool_batches: int = 100,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool_batches = max(1, pool_batches)
        self.seed = seed
        self.epoch = 0
        self._yielded = 0  # batches of the current epoch handed out so far
        self._resume_at = 0  # batches to skip at the next __iter__ (after load_state_dict)
        self._resume_epoch: int | None = None  # ... if that __iter__ is for this epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def start_offset(self) -> int:
        """How many batches of this epoch the next ``__iter__`` skips (a restored position)."""
        return self._resume_at if self._resume_epoch == self.epoch else 0

    def batches(self) -> list[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:  # evaluation: fully sorted, padding minimal
            idx.sort(key=lambda i: self.lengths[i])
            return self._chunk(idx)
        rng = random.Random(self.seed + self.epoch)
        rng.shuffle(idx)
        pool = self.pool_batches * self.batch_size
        out: list[list[int]] = []
        for start in range(0, len(idx), pool):
            chunk = sorted(idx[start : start + pool], key=lambda i: self.lengths[i])
            out.extend(self._chunk(chunk))
        rng.shuffle(out)
        return out

    def _chunk(self, idx: list[int]) -> list[list[int]]:
        return [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        start = self.start_offset
        self._resume_at, self._resume_epoch = 0, None
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state is for seed {state['seed']}, this sampler has seed {self.seed}")
        epoch, yielded = int(state["epoch"]), int(state["yielded"])
        if yielded >= len(self):  # saved at the end of an epoch: the next one starts afresh
            epoch, yielded = epoch + 1, 0
        self.epoch, self._resume_epoch, self._resume_at = epoch, epoch, yielded

    def __len__(self) -> int:
        if not self.shuffle:
            return -(-len(self.lengths) // self.batch_size)
        pool = self.pool_batches * self.batch_size
        n = len(self.lengths)
        full, rest = divmod(n, pool)
        return full * -(-pool // self.batch_size) + -(-rest // self.batch_size)


def _position_source(loader: DataLoader) -> Any:
    """The loader's batch sampler (or sampler) if it can save its position, else None."""
    for obj in (loader.batch_sampler, loader.sampler):
        if (
            obj is not None
            and callable(getattr(obj, "state_dict", None))
            and callable(getattr(obj, "load_state_dict", None))
        ):
            return obj
    return None


class ResumableDataLoader(DataLoader):
    """A DataLoader whose mid-epoch position is saved in Lightning checkpoints.

    ``state_dict()`` is the sampler's state with ``yielded`` set to the number of batches this
    loader has *delivered* in the current pass (plus the batches skipped when it resumed), so
    batches that worker processes fetched ahead are drawn again after a resume.
    """

    def __iter__(self):
        source = _position_source(self)
        if source is None:
            return super().__iter__()
        # read where the sampler starts now: a position loaded after this call (but before
        # the first batch) must not be counted from 0
        self.__dict__["_bertlab_delivered"] = getattr(source, "start_offset", 0)
        return self._counting(super().__iter__())

    def _counting(self, it):
        for batch in it:
            self.__dict__["_bertlab_delivered"] += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        source = _position_source(self)
        if source is None:
            return {}
        state = dict(source.state_dict())
        if "yielded" in state:
            state["yielded"] = int(self.__dict__.get("_bertlab_delivered", 0))
        return {"sampler": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        source = _position_source(self)
        if source is not None and state.get("sampler"):
            source.load_state_dict(state["sampler"])


def make_resumable(loader: Any) -> Any:
    """Make a plain DataLoader whose sampler saves its position a :class:`ResumableDataLoader`
    (in place: the class is swapped, nothing is rebuilt); anything else is returned as is."""
    if type(loader) is DataLoader and _position_source(loader) is not None:
        loader.__class__ = ResumableDataLoader
    return loader


class BucketedSplitLoaders:
    """Mixin for a LightningDataModule whose splits are lists of features with ``input_ids``
    (``self.features[split]``): length-bucketed train / val / test / predict loaders, batch
    sizes, pools, seed and workers from its hparams (``batch_size``, ``eval_batch_size``,
    ``pool_batches``, ``seed``, ``num_workers``). A subclass gives :meth:`collate_fn`."""

    def collate_fn(self, train: bool) -> Any:
        """The batch collate function (``train``: for the training loader)."""
        raise NotImplementedError

    def split_loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.features:  # type: ignore[attr-defined]
            raise RuntimeError(f"{type(self).__name__} has no {split!r} features (setup not run, or no such split)")
        feats = self.features[split]  # type: ignore[attr-defined]
        hp = self.hparams  # type: ignore[attr-defined]
        sampler = BucketBatchSampler(
            [len(f["input_ids"]) for f in feats],
            hp.batch_size if shuffle else hp.eval_batch_size,
            shuffle=shuffle,
            pool_batches=hp.pool_batches,
            seed=hp.seed,
        )
        return DataLoader(feats, batch_sampler=sampler, num_workers=hp.num_workers, collate_fn=self.collate_fn(shuffle))

    def train_dataloader(self) -> DataLoader:
        return self.split_loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.split_loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.split_loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.split_loader("predict", shuffle=False)
