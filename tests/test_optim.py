from __future__ import annotations

import pytest
import torch
from torch import nn

from bertlab.optim import build_optimizer, build_param_groups, piecewise_linear
from bertlab.utils.errors import ConfigError


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
        self.emission = nn.Linear(3, 2)
        self.crf = nn.Module()
        self.crf.transitions = nn.Parameter(torch.zeros(2, 2))


def _lrs(opt):
    return {g["name"]: g["lr"] for g in opt.param_groups}


def test_lr_multiplier_groups_carry_the_right_lrs():
    m = Toy()
    opt = build_optimizer(m, {"_target_": "torch.optim.Adam", "lr": 1e-3, "eps": 1e-6, "lr_multipliers": {"crf": 100}})
    assert _lrs(opt) == pytest.approx({"base": 1e-3, "crf": 1e-1})
    crf_group = next(g for g in opt.param_groups if g["name"] == "crf")
    assert [p is m.crf.transitions for p in crf_group["params"]] == [True]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))


def test_glob_patterns_and_first_match_wins():
    m = Toy()
    groups = build_param_groups(m.named_parameters(), 1.0, {"encoder.1.*": 5, "encoder": 2})
    by = {g["name"]: g for g in groups}
    assert by["encoder.1.*"]["lr"] == 5 and len(by["encoder.1.*"]["params"]) == 2
    assert by["encoder"]["lr"] == 2 and len(by["encoder"]["params"]) == 2
    assert len(by["base"]["params"]) == 3


def test_pattern_matching_nothing_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="optimizer.lr_multipliers.crff"):
        build_param_groups(Toy().named_parameters(), 1.0, {"crff": 10})
    with pytest.raises(ConfigError, match="positive"):
        build_param_groups(Toy().named_parameters(), 1.0, {"crf": -1})


def test_default_optimizer_preset_is_bert4keras_adam(make_cfg):
    cfg = make_cfg()
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.optimizer.weight_decay == 0.0
    assert cfg.optimizer.eps == pytest.approx(1e-6)
    assert list(cfg.optimizer.betas) == [0.9, 0.999]
    opt = build_optimizer(Toy(), dict(cfg.optimizer))
    assert type(opt) is torch.optim.Adam
    g = opt.param_groups[0]
    assert g["weight_decay"] == 0.0 and g["eps"] == pytest.approx(1e-6) and g["betas"] == (0.9, 0.999)


def test_effective_lr_under_adam_is_multiplied():
    # one Adam step moves a parameter by ~lr: the crf group moves 100x further
    m = Toy()
    opt = build_optimizer(m, {"lr": 1e-3, "eps": 1e-12, "lr_multipliers": {"crf": 100}})
    before_t = m.crf.transitions.detach().clone()
    before_w = m.emission.weight.detach().clone()
    loss = m.crf.transitions.sum() + m.emission.weight.sum()
    loss.backward()
    opt.step()
    assert torch.allclose((before_t - m.crf.transitions).abs(), torch.full((2, 2), 0.1), rtol=1e-4)
    assert torch.allclose((before_w - m.emission.weight).abs(), torch.full_like(before_w, 1e-3), rtol=1e-4)


def test_piecewise_linear_matches_bert4keras():
    f = piecewise_linear({1000: 1, 2000: 0.1})
    assert f(0) == 0 and f(500) == pytest.approx(0.5) and f(1000) == 1
    assert f(1500) == pytest.approx(0.55) and f(2000) == pytest.approx(0.1) and f(10**6) == pytest.approx(0.1)


def test_warmup_linear_decay_and_scheduler_errors():
    from bertlab.optim import build_scheduler, warmup_linear_decay

    f = warmup_linear_decay(10, 110, 0.0)
    assert f(0) == 0 and f(5) == pytest.approx(0.5) and f(10) == 1 and f(60) == pytest.approx(0.5) and f(110) == 0
    assert warmup_linear_decay(0, 100)(0) == 1.0
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="scheduler.type"):
        build_scheduler(opt, {"type": "warmup_linear"}, None)
    with pytest.raises(ConfigError, match="unknown scheduler"):
        build_scheduler(opt, {"type": "cosine"}, 10)
    sched = build_scheduler(opt, {"type": "warmup_linear", "warmup_steps": 2}, 4)["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
