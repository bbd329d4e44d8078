"""Progress without a terminal (plain lines every 10% of an epoch and per validation, with
the ETA) and the smoothed loss of the bar (bertlab.callbacks.progress)."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from bertlab.callbacks.progress import (
    LossEMA,
    PlainProgressBar,
    SmoothedRichProgressBar,
    format_seconds,
    progress_bar,
)
from bertlab.utils.errors import ConfigError


def _ema(xs: list[float], decay: float) -> float:
    """The definition: the mean of the x_i weighted by decay**(t - i)."""
    w = [decay ** (len(xs) - 1 - i) for i in range(len(xs))]
    return sum(wi * x for wi, x in zip(w, xs)) / sum(w)


def test_the_smoothed_loss_is_a_bias_corrected_exponential_moving_average():
    ema = LossEMA(0.5)
    assert ema.value is None
    assert ema.update(10.0) == 10.0  # the first value itself, not 0.5 * 10
    assert ema.update(20.0) == pytest.approx(12.5 / 0.75)
    assert ema.update(30.0) == pytest.approx(21.25 / 0.875)
    assert ema.update(float("nan")) == pytest.approx(21.25 / 0.875)  # a skipped NaN step is left out
    xs = [4.0, 200.0, 7.0, 150.0, 5.0, 90.0, 6.0] * 20  # a CWS loss swinging 4-200
    ema = LossEMA(0.98)
    for x in xs:
        ema.update(x)
    assert ema.value == pytest.approx(_ema(xs, 0.98))
    assert 40 < ema.value < 90  # inside the swing, where its mean is
    with pytest.raises(ConfigError, match="ema_decay"):
        LossEMA(1.0)


def test_the_bar_follows_the_terminal(monkeypatch):
    class Stream(io.StringIO):
        def __init__(self, tty: bool):
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(sys, "stdout", Stream(True))
    assert isinstance(progress_bar(), SmoothedRichProgressBar)
    monkeypatch.setattr(sys, "stdout", Stream(False))
    assert isinstance(progress_bar(), PlainProgressBar)
    assert isinstance(progress_bar(mode="rich"), SmoothedRichProgressBar)
    with pytest.raises(ConfigError, match="callbacks.rich_progress_bar.mode"):
        progress_bar(mode="fancy")
    with pytest.raises(ConfigError, match="every"):
        progress_bar(every=0)
    assert format_seconds(3725.4) == "1:02:05" and format_seconds(None) == "?"


class _Model(pl.LightningModule):
    """40 steps of a linear regression, logging ``train/loss`` to the bar like the tasks do."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.losses: list[float] = []

    @staticmethod
    def _loader(seed: int, batches: int):
        g = torch.Generator().manual_seed(seed)
        data = torch.utils.data.TensorDataset(
            torch.randn(8 * batches, 4, generator=g), torch.randn(8 * batches, 1, generator=g) * 10
        )
        return torch.utils.data.DataLoader(data, batch_size=8)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.losses.append(float(loss.detach()))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/mse", torch.nn.functional.mse_loss(self.layer(x), y))

    def train_dataloader(self):
        return self._loader(0, 20)

    def val_dataloader(self):
        return self._loader(1, 2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_plain_lines_every_tenth_of_an_epoch_and_per_validation(tmp_path):
    out = io.StringIO()
    bar = PlainProgressBar(every=0.1, ema_decay=0.9, stream=out)
    model = _Model()
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        val_check_interval=0.5,
        default_root_dir=tmp_path,
    )
    trainer.fit(model)
    lines = out.getvalue().splitlines()
    train = [ln for ln in lines if ln.startswith("[train]")]
    val = [ln for ln in lines if ln.startswith("[val]")]
    # 20 batches an epoch: a line every 2 batches, 10 an epoch
    assert [re.search(r"\((\d+)/20\)", ln).group(1) for ln in train] == [str(k) for k in range(2, 21, 2)] * 2
    assert train[0].startswith("[train] epoch 1/2 10% (2/20) | step 2/40 (5%) | elapsed ")
    assert train[-1].startswith("[train] epoch 2/2 100% (20/20) | step 40/40 (100%)")
    assert all(re.search(r"ETA \d+:\d\d:\d\d", ln) for ln in train + val)
    # validations at steps 10, 20, 30, 40, each with its metrics
    assert [re.search(r"step (\d+)/40", ln).group(1) for ln in val] == ["10", "20", "30", "40"]
    assert all(re.search(r"val/mse=\d", ln) for ln in val)
    # the loss shown is the EMA of the batch losses, not the last batch's loss
    shown = float(re.search(r"loss_ema (\S+)", train[-1]).group(1))
    assert shown == pytest.approx(_ema(model.losses, 0.9), rel=1e-3)
    assert not math.isclose(shown, model.losses[-1], rel_tol=1e-2)
    assert bar.get_metrics(trainer, model)["loss_ema"] == pytest.approx(_ema(model.losses, 0.9))
    assert "train/loss" not in bar.get_metrics(trainer, model)


@pytest.mark.slow
def test_a_run_without_a_terminal_prints_plain_progress(tmp_path):
    from tests.test_resume import ENV, ROOT, TINY_RUN

    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # this checkout's sources
    run_dir = tmp_path / "run"
    args = [
        a
        for a in TINY_RUN
        if not a.startswith(("callbacks.rich_progress_bar", "trainer.max_epochs", "trainer.val_check_interval"))
    ]
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        *args,
        "trainer.max_epochs=1",
        "trainer.val_check_interval=0.5",
        "trainer.log_every_n_steps=1",
        "callbacks.crf_mechanism=null",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=170)  # stdout: a pipe
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    train = [ln for ln in lines if ln.startswith("[train] epoch 1/1 ")]
    val = [ln for ln in lines if ln.startswith("[val] ")]
    # 48 batches: a line at the end of each tenth (batches 5, 10, 15, 20, 24, ..., 48)
    tenths = [k for k in range(1, 49) if k * 10 // 48 > (k - 1) * 10 // 48]
    assert [re.search(r"% \((\d+)/48\)", ln).group(1) for ln in train] == [str(k) for k in tenths], lines
    assert len(val) == 2 and all(re.search(r"step \d+/48 .*ETA \d+:\d\d:\d\d .*val/f1=0\.\d", ln) for ln in val), val
    assert "[test] " in proc.stdout
    # the smoothed loss: the EMA (decay 0.98) of every logged training loss so far
    with open(run_dir / "csv" / "metrics.csv", encoding="utf-8", newline="") as fh:
        losses = [float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")]
    assert len(losses) == 48
    shown = float(re.search(r"loss_ema (\S+)", train[-1]).group(1))
    assert shown == pytest.approx(_ema(losses, 0.98), rel=1e-3)
