"""Non-padding tokens per second of training (forward + backward + optimizer step)."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class TokenThroughput(pl.Callback):
    def __init__(self, mask_key: str = "attention_mask"):
        self.mask_key = mask_key
        self.tokens = 0
        self.padded_tokens = 0
        self.seconds = 0.0
        self._t0: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._t0 is None:
            return
        self.seconds += time.perf_counter() - self._t0
        mask = batch[self.mask_key]
        self.tokens += int(mask.sum())
        self.padded_tokens += mask.numel()
        self._t0 = None
        if self.seconds > 0:
            pl_module.log("train/tokens_per_s", self.tokens / self.seconds, on_step=True, on_epoch=False)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def padding_fraction(self) -> float:
        return 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
