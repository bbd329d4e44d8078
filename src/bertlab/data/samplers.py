"""Length-bucketed batching: little padding, random order.

Indices are shuffled, cut into pools of ``pool_batches * batch_size``, each pool is sorted by
length and cut into batches, and the batches are shuffled. Every epoch draws a new order
from ``seed + epoch``, so runs are reproducible, and the sampler's position (epoch, batches
handed out) is a ``state_dict`` so a resumed run continues with exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
        start, self._resume_at = self._resume_at, 0
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"sampler state is for seed {state['seed']}, this sampler has seed {self.seed}")
        self.epoch = int(state["epoch"])
        self._resume_at = int(state["yielded"])

    def __len__(self) -> int:
        if not self.shuffle:
            return -(-len(self.lengths) // self.batch_size)
        pool = self.pool_batches * self.batch_size
        n = len(self.lengths)
        full, rest = divmod(n, pool)
        return full * -(-pool // self.batch_size) + -(-rest // self.batch_size)
