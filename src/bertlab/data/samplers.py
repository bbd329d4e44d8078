"""Length-bucketed batching: little padding, random order.

Indices are shuffled, cut into pools of ``pool_batches * batch_size``, each pool is sorted by
length and cut into batches, and the batches are shuffled. Every epoch draws a new order
from ``seed + epoch``, so runs are reproducible, and the sampler's position (epoch, batches
handed out) is a ``state_dict`` so a resumed run continues with exactly the batches an
uninterrupted run would have seen.

**Sharding under DDP.** With ``W`` processes (ranks) the training sampler draws one
*global* order, identical on every rank because it depends only on ``(seed, epoch)``: the
batches a one-process sampler with ``batch_size * W`` (and the same ``pool_batches``) would
draw, each cut into ``W`` slices of ``batch_size``; rank ``r`` trains on slice ``r`` of every
global batch. So the ranks' batches are disjoint, together they cover the epoch once, every
optimizer step sees the examples a one-process step with batch ``W x batch_size`` sees (with
per-sequence mean losses the averaged gradient is that step's), and steps per epoch =
``ceil(batches / W)`` (``batches``: the number of ``batch_size`` batches of the epoch).
**Padding, not dropping:** the one global batch of an epoch that has fewer than ``W`` slices
(the remainder of the last length pool) gives the ranks it lacks a repeat of one of its
slices, so every rank takes the same number of steps (DDP needs that) and no example is left
out; at most ``W - 1`` batches per epoch are seen twice. ``W = 1`` is exactly the
one-process order. Rank and world size come from ``torch.distributed`` when it is
initialised (read when the epoch starts), or from the ``rank`` / ``world_size`` arguments;
evaluation samplers (``shuffle=False``) are never sharded (bertlab/tasks/evaluation.py splits
evaluation batches itself and gathers the predictions, so metrics equal one process's).

**Resuming.** Lightning saves and restores a training DataLoader's position only when the
loader itself has ``state_dict`` / ``load_state_dict`` (its ``_Stateful`` protocol; the state
is loaded in ``fit_loop.setup_data`` before the first batch is drawn). DataModules therefore
return a :class:`ResumableDataLoader` for training (a plain ``DataLoader`` restarts the epoch
at its first batch on resume): its state is the position of its batch sampler
(:class:`ResumablePosition`: the epoch being drawn and the batches of it *delivered* to the
training loop, not the ones worker processes prefetched). The epoch comes from Lightning: at
the start of every epoch, a restarted one included, Lightning calls ``set_epoch(epoch)`` on
``loader.batch_sampler.sampler``; a resumable batch sampler's ``sampler`` is a forwarder to its
own ``set_epoch``. A restored position applies to the epoch it was saved in and to no other,
so whatever Lightning decides about where an epoch ends (a checkpoint after the last batch of
an epoch continues with the next epoch, at its first batch), the sampler follows.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Sampler

log = logging.getLogger(__name__)


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised ``torch.distributed`` group; (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_shard(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit (rank, world_size) if given, else those of ``torch.distributed``."""
    if rank is None and world_size is None:
        return dist_rank_world()
    d_rank, d_world = dist_rank_world()
    world = d_world if world_size is None else int(world_size)
    rank = d_rank if rank is None else int(rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world}")
    return rank, world


def rank_slice(global_batch: list[int], batch_size: int, rank: int, world: int) -> list[int]:
    """Slice ``rank`` of a global batch cut into ``batch_size`` pieces; a rank past the last
    piece (a short global batch) gets a repeat of piece ``rank % pieces`` (the padding)."""
    pieces = -(-len(global_batch) // batch_size)
    k = rank if rank < pieces else rank % pieces
    return global_batch[k * batch_size : (k + 1) * batch_size]


class _EpochForwarder:
    """What Lightning finds at ``loader.batch_sampler.sampler``: its ``set_epoch`` calls the
    batch sampler's (Lightning never calls ``set_epoch`` on a batch sampler itself)."""

    def __init__(self, owner: Any):
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class ResumablePosition:
    """Mixin for a batch sampler that draws a deterministic order per ``epoch``: its position
    (the epoch and the batches of it handed out) as ``state_dict``, and a restored position
    skipped at the next pass over *that* epoch. A subclass sets ``self.epoch`` and calls
    :meth:`_init_position`, and iterates its epoch's batches through :meth:`_positioned`."""

    epoch: int

    def _init_position(self) -> None:
        self._yielded = 0  # batches of the current pass handed out so far (skipped ones included)
        self.pass_start = 0  # where the current pass started (a restored position, or 0)
        self._resume_at = 0  # batches to skip at the next pass ...
        self._resume_epoch: int | None = None  # ... if that pass is over this epoch

    @property
    def sampler(self) -> _EpochForwarder:
        return _EpochForwarder(self)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def start_offset(self) -> int:
        """How many batches of this epoch the next pass skips (a restored position)."""
        return self._resume_at if self._resume_epoch == self.epoch else 0

    def _positioned(self, batches: Iterator[list[int]]) -> Iterator[list[int]]:
        start = self.start_offset
        self._resume_at, self._resume_epoch = 0, None
        self._yielded = self.pass_start = start
        for i, batch in enumerate(batches):
            if i < start:
                continue
            self._yielded += 1
            yield batch

    def position_state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self._yielded}

    def load_position(self, state: dict[str, Any]) -> None:
        """Skip ``yielded`` batches at the next pass over epoch ``epoch`` (and only that epoch)."""
        self.epoch = int(state["epoch"])
        self._resume_epoch, self._resume_at = self.epoch, int(state["yielded"])


class BucketBatchSampler(ResumablePosition, Sampler[list[int]]):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        pool_batches: int = 100,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool_batches = max(1, pool_batches)
        self.seed = seed
        self.rank, self.world_size = rank, world_size  # None: from torch.distributed
        self.epoch = 0
        self._init_position()

    def shard(self) -> tuple[int, int]:
        """(rank, world size) this sampler draws for; (0, 1) for evaluation (``shuffle=False``)."""
        if not self.shuffle:
            return 0, 1
        return resolve_shard(self.rank, self.world_size)

    def global_batches(self, world: int | None = None) -> list[list[int]]:
        """The epoch's global batches (``world x batch_size`` each; the same on every rank)."""
        world = self.shard()[1] if world is None else world
        size = self.batch_size * world
        idx = list(range(len(self.lengths)))
        if not self.shuffle:  # evaluation: fully sorted, padding minimal
            idx.sort(key=lambda i: self.lengths[i])
            return self._chunk(idx, size)
        rng = random.Random(self.seed + self.epoch)
        rng.shuffle(idx)
        pool = self.pool_batches * size
        out: list[list[int]] = []
        for start in range(0, len(idx), pool):
            chunk = sorted(idx[start : start + pool], key=lambda i: self.lengths[i])
            out.extend(self._chunk(chunk, size))
        rng.shuffle(out)
        return out

    def batches(self) -> list[list[int]]:
        """This rank's batches of the epoch, in order."""
        rank, world = self.shard()
        glob = self.global_batches(world)
        if world == 1:
            return glob
        return [rank_slice(g, self.batch_size, rank, world) for g in glob]

    @staticmethod
    def _chunk(idx: list[int], size: int) -> list[list[int]]:
        return [idx[i : i + size] for i in range(0, len(idx), size)]

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the epoch is read when the first batch is drawn, after Lightning's set_epoch
        yield from self._positioned(iter(self.batches()))

    def state_dict(self) -> dict[str, int]:
        return {**self.position_state(), "seed": self.seed, "world_size": self.shard()[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state is for seed {state['seed']}, this sampler has seed {self.seed}")
        epoch, yielded = int(state["epoch"]), int(state["yielded"])
        saved_world, world = int(state.get("world_size", 1)), self.shard()[1]
        if 0 < yielded < len(self) and saved_world != world:
            raise ValueError(
                f"cannot resume mid-epoch with {world} process(es): the checkpoint was saved with {saved_world} "
                f"(its position, batch {yielded} of epoch {epoch}, is in batches of that many ranks); "
                "resume with the same trainer.devices x trainer.num_nodes, or from an end-of-epoch checkpoint"
            )
        self.load_position(state)

    def __len__(self) -> int:
        """Batches of this rank per epoch: ``ceil(ceil(n / batch_size) / world_size)``."""
        n_batches = -(-len(self.lengths) // self.batch_size)
        return -(-n_batches // self.shard()[1])


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
    """The training DataLoader of every DataModule: its mid-epoch position is saved in
    Lightning checkpoints (Lightning's ``_Stateful`` protocol, see the module doc).

    ``state_dict()`` is the batch sampler's state with ``yielded`` set to the batches this
    loader has *delivered* in the current pass (counted from where the pass started), so
    batches that worker processes fetched ahead are drawn again after a resume."""

    def __iter__(self):
        self.__dict__["_bertlab_delivered"] = None  # not known before the pass starts
        if _position_source(self) is None:
            return super().__iter__()
        return self._counting(super().__iter__())

    def _counting(self, it):
        for batch in it:
            source = _position_source(self)
            done = self.__dict__.get("_bertlab_delivered")
            self.__dict__["_bertlab_delivered"] = (source.pass_start if done is None else done) + 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        source = _position_source(self)
        if source is None:
            return {}
        state = dict(source.state_dict())
        delivered = self.__dict__.get("_bertlab_delivered")
        if "yielded" in state:  # before the first batch of a pass: where that pass will start
            state["yielded"] = int(source.start_offset if delivered is None else delivered)
        return {"sampler": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        source = _position_source(self)
        if source is not None and state.get("sampler"):
            source.load_state_dict(state["sampler"])


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
        cls = ResumableDataLoader if shuffle else DataLoader  # training: resumable mid-epoch
        return cls(feats, batch_sampler=sampler, num_workers=hp.num_workers, collate_fn=self.collate_fn(shuffle))

    def train_dataloader(self) -> DataLoader:
        return self.split_loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.split_loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.split_loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.split_loader("predict", shuffle=False)


def random_batch_sampler(n: int, batch_size: int, seed: int = 0) -> BucketBatchSampler:
    """Random batches of ``n`` equally weighted examples (no length bucketing): a
    :class:`BucketBatchSampler` over equal lengths, so it is rank-aware and resumable."""
    return BucketBatchSampler([0] * n, batch_size, shuffle=True, seed=seed)


def log_global_batch(trainer: Any, batch_size: int | None) -> int | None:
    """Log (and return) the global batch ``world_size x batch_size x accumulate_grad_batches``
    at train start. The learning rate is not scaled with it: that is the user's choice."""
    if batch_size is None:
        return None
    world = int(getattr(trainer, "world_size", 1) or 1)
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    glob = world * int(batch_size) * accumulate
    log.info(
        "global batch = %d (world_size %d x batch %d x accumulate_grad_batches %d); the learning rate is not "
        "scaled with it",
        glob,
        world,
        batch_size,
        accumulate,
    )
    return glob
