"""TokenThroughput: tokens/s, per-epoch training seconds (batches only) and peak memory."""

import time
from types import SimpleNamespace

import pytest
import torch

from bertlab.callbacks.throughput import TokenThroughput, peak_memory_mb


class _Module:
    device = torch.device("cpu")

    def __init__(self):
        self.logged: dict[str, list[float]] = {}

    def log(self, key, value, **_):
        self.logged.setdefault(key, []).append(float(value))


def test_epoch_seconds_count_training_batches_only_and_peak_memory_is_logged():
    cb, module, trainer = TokenThroughput(), _Module(), SimpleNamespace()
    batch = {"attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])}
    for _ in range(2):
        cb.on_train_epoch_start(trainer, module)
        for i in range(2):
            cb.on_train_batch_start(trainer, module, batch, i)
            time.sleep(0.02)
            cb.on_train_batch_end(trainer, module, None, batch, i)
            time.sleep(0.2)  # between batches (data loading): not counted
        cb.on_train_epoch_end(trainer, module)
    secs = module.logged["time/epoch_train_seconds"]
    assert len(secs) == 2 and cb.epoch_seconds == secs
    assert all(0.04 <= s < 0.2 for s in secs)  # two 20 ms batches, not the 200 ms gaps
    assert sum(secs) == pytest.approx(cb.seconds)
    assert cb.tokens == 4 * 3 and cb.padding_fraction == pytest.approx(0.5)
    mem = module.logged["time/peak_memory_mb"]
    assert len(mem) == 2 and mem[0] <= mem[1] and mem[0] > 10  # a Python process with torch holds > 10 MiB


def test_peak_memory_grows_with_a_large_allocation():
    before = peak_memory_mb()
    block = torch.ones(64 * 2**20, dtype=torch.uint8)  # 64 MiB, touched
    block += 1
    assert peak_memory_mb() >= before
    assert peak_memory_mb() >= 64
    del block


def test_peak_memory_is_reset_when_a_fit_starts():
    """A sequential multirun runs its jobs in one process: each fit's peak must be its own, not
    the largest of the jobs before it (Linux: VmHWM reset through /proc/self/clear_refs)."""
    from bertlab.callbacks.throughput import _vm_hwm_mb

    if _vm_hwm_mb() is None:
        pytest.skip("no /proc/self/status VmHWM on this platform")
    block = torch.ones(256 * 2**20, dtype=torch.uint8)  # 256 MiB, touched
    block += 1
    high = peak_memory_mb()
    del block
    cb, module = TokenThroughput(), _Module()
    cb.on_fit_start(SimpleNamespace(), module)
    after = peak_memory_mb()
    assert after < high - 200  # the earlier 256 MiB peak is gone
    cb.on_train_epoch_start(SimpleNamespace(), module)
    cb.on_train_epoch_end(SimpleNamespace(), module)
    assert module.logged["time/peak_memory_mb"][0] < high - 200


def test_peak_memory_falls_back_to_ru_maxrss_without_proc(monkeypatch, tmp_path):
    import bertlab.callbacks.throughput as tp

    monkeypatch.setattr(tp, "_PROC", tmp_path / "missing")
    assert tp.reset_peak_memory() is False
    assert peak_memory_mb() * 2**10 == pytest.approx(tp.resource.getrusage(tp.resource.RUSAGE_SELF).ru_maxrss)
