"""Initialisation laws: empirical variances, orthogonality, pattern selection, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bertlab.nn.init import apply_init, init_linear_, law_variance
from bertlab.utils.errors import ConfigError

FAN_IN, FAN_OUT = 384, 768  # weight [768, 384]: 295k entries, relative s.e. of a variance ~0.3%
EXPECTED = {
    "hf": 0.02**2,
    "xavier": 2 / (FAN_IN + FAN_OUT),
    "lecun": 1 / FAN_IN,
    "dual": 1 / FAN_OUT,
    "he": 2 / FAN_IN,
    "orthogonal": 1 / FAN_OUT,
}


@pytest.mark.parametrize("law", [*EXPECTED, "xavier_uniform", "lecun_uniform", "dual_uniform", "he_uniform"])
def test_empirical_variance_matches_the_law(law):
    layer = nn.Linear(FAN_IN, FAN_OUT)
    init_linear_(layer, law, generator=torch.Generator().manual_seed(0))
    w = layer.weight.detach().double()
    want = EXPECTED[law.replace("_uniform", "")]
    assert law_variance(law, FAN_IN, FAN_OUT) == pytest.approx(want)
    assert w.var().item() == pytest.approx(want, rel=0.02)
    assert abs(w.mean().item()) < 4 * math.sqrt(want / w.numel())
    assert torch.count_nonzero(layer.bias) == 0
    if law.endswith("_uniform"):  # U[-sqrt(3v), sqrt(3v)]: bounded, flat (kurtosis 1.8 vs 3 for a normal)
        assert w.abs().max().item() <= math.sqrt(3 * want) + 1e-12
        assert (w**4).mean().item() / w.var().item() ** 2 == pytest.approx(1.8, abs=0.05)
    elif law != "orthogonal":
        assert (w**4).mean().item() / w.var().item() ** 2 == pytest.approx(3.0, abs=0.1)


def test_orthogonal_is_exactly_semi_orthogonal():
    layer = nn.Linear(FAN_IN, FAN_OUT)  # tall [768, 384]: orthonormal columns
    init_linear_(layer, "orthogonal")
    w = layer.weight.detach().double()
    torch.testing.assert_close(w.T @ w, torch.eye(FAN_IN, dtype=torch.double), atol=1e-5, rtol=0)
    wide = nn.Linear(FAN_OUT, FAN_IN)  # wide [384, 768]: orthonormal rows
    init_linear_(wide, "orthogonal")
    v = wide.weight.detach().double()
    torch.testing.assert_close(v @ v.T, torch.eye(FAN_IN, dtype=torch.double), atol=1e-5, rtol=0)


def test_dual_law_makes_wtw_close_to_identity_where_lecun_does_not():
    # y = W x, W [m, n], m = 4n: variance 1/m gives W^T W ~ I; 1/n gives ~ (m/n) I
    n, m = 128, 512
    dual, lecun = nn.Linear(n, m), nn.Linear(n, m)
    init_linear_(dual, "dual", generator=torch.Generator().manual_seed(1))
    init_linear_(lecun, "lecun", generator=torch.Generator().manual_seed(1))
    eye = torch.eye(n)
    assert ((dual.weight.T @ dual.weight - eye) ** 2).mean() < 3 / m
    assert torch.diagonal(lecun.weight.T @ lecun.weight).mean().item() == pytest.approx(m / n, rel=0.05)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Linear(16, 16)
        self.ffn = nn.Linear(16, 64)
        self.out = nn.Linear(64, 16)
        self.norm = nn.LayerNorm(16)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 16)
        self.layers = nn.ModuleList([Block(), Block()])
        self.classifier = nn.Linear(16, 2)


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_patterns_select_modules_first_match_wins():
    torch.manual_seed(0)
    net = Net()
    before = _snapshot(net)
    done = apply_init(net, {"layers.1.*": "orthogonal", "ffn": "he", "classifier": "dual"})
    assert done == ["layers.0.ffn", "layers.1.attn", "layers.1.ffn", "layers.1.out", "classifier"]
    after = net.state_dict()
    untouched = [k for k in before if not any(k.startswith(d + ".") for d in done)]
    assert "emb.weight" in untouched and "layers.0.attn.weight" in untouched and "layers.0.norm.weight" in untouched
    for k in untouched:
        assert torch.equal(after[k], before[k]), k
    for d in done:
        assert not torch.equal(after[d + ".weight"], before[d + ".weight"])
        assert torch.count_nonzero(after[d + ".bias"]) == 0
    w = net.layers[1].ffn.weight  # layers.1.* came first: orthogonal, not he
    torch.testing.assert_close(w.T @ w, torch.eye(16), atol=1e-5, rtol=0)


def test_a_law_name_initialises_every_linear():
    net = Net()
    done = apply_init(net, "lecun")
    assert len(done) == 7
    assert apply_init(net, None) == [] and apply_init(net, "none") == []


def test_bad_specs_are_one_clear_error():
    with pytest.raises(ConfigError, match=r"model.init'.*unknown init 'kaiming'"):
        apply_init(Net(), "kaiming")
    with pytest.raises(ConfigError, match=r"model.init.ffn'.*unknown init"):
        apply_init(Net(), {"ffn": "orthogonal_uniform"})
    with pytest.raises(ConfigError, match=r"model.init.decoder'.*matches no Linear"):
        apply_init(Net(), {"ffn": "he", "decoder": "dual"})
