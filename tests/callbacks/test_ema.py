"""EMA callback: the update formula, EMA weights in validation and checkpoints, exact resume."""

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bertlab.callbacks.ema import EMA


def test_update_formula_on_a_toy_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(decay=0.9)
    ema.update(model)  # ema_0 = w_0
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = dict(w0)
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        expected = {n: 0.9 * expected[n] + 0.1 * p.detach() for n, p in model.named_parameters()}
    assert ema.num_updates == 3
    for n in expected:
        torch.testing.assert_close(ema.ema[n], expected[n], rtol=0, atol=1e-6)


def test_warmup_decay_rule():
    ema = EMA(decay=0.999, warmup=True)
    assert ema.current_decay() == pytest.approx(1 / 10)
    ema.num_updates = 90
    assert ema.current_decay() == pytest.approx(91 / 100)
    ema.num_updates = 10**6
    assert ema.current_decay() == 0.999
    assert EMA(decay=0.999).current_decay() == 0.999


def test_swap_in_and_out_restores_the_training_weights():
    torch.manual_seed(1)
    model = nn.Linear(3, 2)
    ema = EMA(decay=0.5)
    ema.update(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    train_w = model.weight.detach().clone()
    ema.swap_in(model)
    torch.testing.assert_close(model.weight, ema.ema["weight"])
    assert not torch.equal(model.weight, train_w)
    ema.swap_out(model)
    assert torch.equal(model.weight, train_w)


class Toy(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.seen_val_weights: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.lin(x) - y) ** 2).mean()

    def validation_step(self, batch, batch_idx):
        self.seen_val_weights.append(self.lin.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


def _data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 4, generator=g)
    y = x.sum(1, keepdim=True) + 1
    return DataLoader(TensorDataset(x, y), batch_size=4, shuffle=False)


def _fit(tmp_path, max_epochs, ckpt_path=None, name="run"):
    torch.manual_seed(0)
    model = Toy()
    ema = EMA(decay=0.8)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ema],
        default_root_dir=str(tmp_path / name),
        num_sanity_val_steps=0,
    )
    trainer.fit(model, train_dataloaders=_data(), val_dataloaders=_data(), ckpt_path=ckpt_path)
    return trainer, model, ema


def test_validation_sees_ema_weights_and_checkpoint_round_trip_resumes_exactly(tmp_path):
    full_trainer, full_model, full_ema = _fit(tmp_path, 2, name="full")
    assert full_ema.num_updates == 8
    # validation ran on the EMA weights, and the training weights came back afterwards
    torch.testing.assert_close(full_model.seen_val_weights[-1], full_ema.ema["lin.weight"])
    assert not torch.allclose(full_model.lin.weight, full_ema.ema["lin.weight"])

    half_trainer, half_model, half_ema = _fit(tmp_path, 1, name="half")
    ckpt = tmp_path / "half.ckpt"
    half_trainer.save_checkpoint(str(ckpt))
    saved = torch.load(ckpt, weights_only=False)
    # the checkpoint's model weights are the EMA weights; the training weights ride along
    torch.testing.assert_close(saved["state_dict"]["lin.weight"], half_ema.ema["lin.weight"])
    state = next(v for k, v in saved["callbacks"].items() if k.startswith("EMA"))
    torch.testing.assert_close(state["train_weights"]["lin.weight"], half_model.lin.weight.detach())
    assert state["num_updates"] == 4

    # load_from_checkpoint-style use (evaluate / predict) gets the EMA weights
    fresh = Toy()
    fresh.load_state_dict(saved["state_dict"])
    torch.testing.assert_close(fresh.lin.weight, half_ema.ema["lin.weight"])

    _, resumed_model, resumed_ema = _fit(tmp_path, 2, ckpt_path=str(ckpt), name="resumed")
    assert resumed_ema.num_updates == 8
    torch.testing.assert_close(resumed_model.lin.weight, full_model.lin.weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(resumed_ema.ema["lin.weight"], full_ema.ema["lin.weight"], rtol=0, atol=1e-6)
    torch.testing.assert_close(resumed_ema.ema["lin.bias"], full_ema.ema["lin.bias"], rtol=0, atol=1e-6)


def test_test_with_a_checkpoint_keeps_its_ema_weights(tmp_path):
    trainer, model, ema = _fit(tmp_path, 1, name="t")
    ckpt = tmp_path / "t.ckpt"
    trainer.save_checkpoint(str(ckpt))
    at_save = ema.ema["lin.weight"].clone()
    # move the live EMA away from the checkpoint: test(ckpt_path) must still use the checkpoint's
    with torch.no_grad():
        ema.ema["lin.weight"].add_(5.0)
    model.seen_val_weights.clear()
    model.test_step = model.validation_step
    trainer.test(model, dataloaders=_data(), ckpt_path=str(ckpt), verbose=False)
    torch.testing.assert_close(model.seen_val_weights[-1], at_save)
