"""The CRF mechanism callback (issue 17): gradient norms of the transitions and the emission
layer, averaged between validations, and the validation emission margin (issue 29 §6), against
a hand computation; CSV + PNG written."""

from __future__ import annotations

import csv
import math

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bertlab.callbacks.crf_mechanism import CRFMechanism, emission_margin_sums, grad_norm
from bertlab.nn.crf import CRF

K, T, D = 4, 6, 8


class Toy(pl.LightningModule):
    """emission Linear + CRF head; validation reports fixed f1 values like a task does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emission = nn.Linear(D, K)
        self.head = CRF(K)
        self.last_metrics: dict = {}
        self.seen: list[tuple[float, float]] = []
        self.val_emissions: list[list[torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        mask = torch.ones(y.shape, dtype=torch.bool)
        return self.head.nll(self.emission(x), y, mask)

    def on_before_optimizer_step(self, optimizer):
        # the hand computation the callback must agree with
        t = math.sqrt(float(self.head.transitions.grad.pow(2).sum()))
        e = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in self.emission.parameters()))
        self.seen.append((t, e))

    def on_validation_epoch_start(self):
        self.val_emissions.append([])

    def validation_step(self, batch, batch_idx):
        self.val_emissions[-1].append(self.emission(batch[0]).detach().clone())

    def on_validation_epoch_end(self):
        self.last_metrics["val"] = {"f1": 0.9, "f1_emissions_only": 0.85}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader(n=8):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, T, D, generator=g)
    y = torch.randint(0, K, (n, T), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=2)


def test_grad_norm_of_parameters_without_gradients_is_none():
    p = nn.Parameter(torch.ones(3))
    assert grad_norm([p, None]) is None
    p.grad = torch.tensor([3.0, 0.0, 4.0])
    assert grad_norm([p]) == 5.0


def test_emission_margin_sums_by_hand_and_under_a_mask():
    em = torch.tensor([[[1.0, 5.0, 2.0], [0.0, 0.0, 3.0], [7.0, 6.5, -1.0]]])  # shape: [1, 3, 3]
    assert emission_margin_sums(em) == (15.0, 3.0 + 3.0 + 0.5, 3)
    assert emission_margin_sums(em, torch.tensor([[True, False, True]])) == (12.0, 3.5, 2)
    # a mask of another shape (no per-token mask) counts every token
    assert emission_margin_sums(em, torch.ones(2, dtype=torch.bool))[2] == 3


def test_mechanism_means_between_validations_match_hand_computation(tmp_path):
    model = Toy()
    cb = CRFMechanism(str(tmp_path / "mech"))
    trainer = pl.Trainer(
        max_steps=8,
        val_check_interval=4,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, train_dataloaders=_loader(16), val_dataloaders=_loader(2))
    assert [r["step"] for r in cb.rows] == [4, 8]
    for i, row in enumerate(cb.rows):
        part = model.seen[4 * i : 4 * i + 4]
        assert math.isclose(row["transition_grad_norm"], sum(t for t, _ in part) / 4, rel_tol=1e-6)
        assert math.isclose(row["emission_grad_norm"], sum(e for _, e in part) / 4, rel_tol=1e-6)
        assert math.isclose(row["transitions_add"], 0.05, rel_tol=1e-6)
        # this validation's emissions (1 batch of 2 x T tokens, no mask): top and top - second
        top2 = torch.cat(model.val_emissions[i]).topk(2, dim=-1).values
        assert math.isclose(row["emission_top"], float(top2[..., 0].mean()), rel_tol=1e-5)
        assert math.isclose(row["emission_margin"], float((top2[..., 0] - top2[..., 1]).mean()), rel_tol=1e-5)
    assert cb._hook is None  # the hook lives during validation only
    # the last validation's values are logged
    assert math.isclose(
        float(trainer.callback_metrics["mechanism/transition_grad_norm"]),
        cb.rows[-1]["transition_grad_norm"],
        rel_tol=1e-5,
    )
    with open(tmp_path / "mech" / "mechanism.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [4, 8]
    assert math.isclose(float(rows[-1]["emission_margin"]), cb.rows[-1]["emission_margin"], rel_tol=1e-9)
    assert (tmp_path / "mech" / "mechanism.png").stat().st_size > 0
