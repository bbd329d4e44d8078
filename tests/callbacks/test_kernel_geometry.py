"""KernelGeometry: post 3's mean((W^T W - I)^2) of chosen Linear kernels during training."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from bertlab.callbacks.kernel_geometry import KernelGeometry
from bertlab.utils.errors import ConfigError


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16))
        self.head = nn.Linear(16, 1)
        with torch.no_grad():  # body.0 starts exactly orthogonal: its statistic is 0 at step 0
            nn.init.orthogonal_(self.body[0].weight)

    def training_step(self, batch, batch_idx):
        return self.head(self.body(batch[0])).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _fit(tmp_path, cb, steps=6):
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(48, 16)), batch_size=8)
    trainer = pl.Trainer(
        max_steps=steps,
        logger=pl.loggers.CSVLogger(tmp_path / "csv"),
        callbacks=[cb],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    model = Tiny()
    trainer.fit(model, data)
    return model, trainer


def test_statistic_per_layer_logged_written_and_plotted(tmp_path):
    cb = KernelGeometry(str(tmp_path / "geometry"), patterns=["body.*"], every_n_steps=2)
    model, trainer = _fit(tmp_path, cb)
    assert cb.steps == [0, 2, 4, 6]
    assert set(cb.values) == {"body.0", "body.2"}  # the head is not matched
    assert cb.values["body.0"][0] == pytest.approx(0.0, abs=1e-10)  # orthogonal at init
    assert cb.values["body.0"][-1] > 1e-6  # training moved it
    w = model.body[2].weight.detach()
    want = ((w.T @ w - torch.eye(16)) ** 2).mean().item()  # by hand, the final weights
    assert cb.values["body.2"][-1] == pytest.approx(want, rel=1e-5)
    rows = list(csv.reader(open(tmp_path / "geometry" / "gram_deviation.csv", encoding="utf-8")))
    assert rows[0] == ["step", "body.0", "body.2"] and [r[0] for r in rows[1:]] == ["0", "2", "4", "6"]
    assert (tmp_path / "geometry" / "gram_deviation.png").stat().st_size > 1000
    assert "geometry/gram_dev_mean" in trainer.logged_metrics or "geometry/gram_dev_max" in trainer.callback_metrics
    # the two parts, per layer in kernel_statistics.csv and as means over layers in the logs
    rows = list(csv.reader(open(tmp_path / "geometry" / "kernel_statistics.csv", encoding="utf-8")))
    assert rows[0] == ["step", "layer", "gram_dev", "gram_side", "gram_diag", "gram_offdiag_cos2", "filter_cos2"]
    first = {r[1]: r for r in rows[1:] if r[0] == "0"}
    assert float(first["body.0"][4]) == pytest.approx(0.0, abs=1e-6)  # orthogonal at init: norms 1
    assert float(first["body.0"][5]) == pytest.approx(0.0, abs=1e-6)  # and angles 90 degrees
    for key in ("gram_diag_mean", "gram_offdiag_cos2_mean", "filter_cos2_mean"):
        assert f"geometry/{key}" in trainer.logged_metrics, key
    # the final kernels' values, for metrics.json
    ws = [model.body[i].weight.detach().double() for i in (0, 2)]
    want = sum(((w.T @ w).diagonal() - 1).pow(2).mean().item() for w in ws) / 2
    assert trainer.callback_metrics["geometry/final_gram_diag_mean"].item() == pytest.approx(want, rel=1e-5)
    u = [nn.functional.normalize(w, dim=0) for w in ws]
    cos2 = [((x.T @ x) ** 2 - torch.eye(16, dtype=x.dtype)).sum().item() / (16 * 15) for x in u]
    assert trainer.callback_metrics["geometry/final_gram_offdiag_cos2_mean"].item() == pytest.approx(
        sum(cos2) / 2, rel=1e-5
    )
    assert trainer.callback_metrics["geometry/final_n_rows_gram"].item() == 0.0
    init = trainer.callback_metrics["geometry/init_gram_offdiag_cos2_mean"].item()
    assert init == pytest.approx(sum(float(first[k][5]) for k in ("body.0", "body.2")) / 2, rel=1e-4)


def test_pattern_matching_nothing_and_bad_interval_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="callbacks.kernel_geometry.every_n_steps"):
        KernelGeometry(str(tmp_path), every_n_steps=0)
    with pytest.raises(ConfigError, match="match no Linear layer"):
        _fit(tmp_path, KernelGeometry(str(tmp_path), patterns=["encoder.*"]), steps=1)
