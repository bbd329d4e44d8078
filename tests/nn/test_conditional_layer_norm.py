"""ConditionalLayerNorm: zero-initialised CLN == plain LayerNorm; the condition then matters."""

import pytest
import torch
from torch import nn

from bertlab.nn.conditional_layer_norm import ConditionalLayerNorm


@pytest.mark.parametrize("hidden_units,act", [(None, None), (16, "relu"), (8, "tanh")])
def test_fresh_cln_equals_the_layer_norm_it_copies(hidden_units, act):
    torch.manual_seed(0)
    ln = nn.LayerNorm(32, eps=1e-12)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    cln = ConditionalLayerNorm.from_layer_norm(ln, cond_dim=6, hidden_units=hidden_units, act=act)
    x, c = torch.randn(3, 5, 32), torch.randn(3, 6)
    torch.testing.assert_close(cln(x, c), ln(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(cln(x, torch.zeros(3, 6)), cln(x, 100 * c))


def test_condition_changes_the_output_after_a_step_and_gradients_flow():
    torch.manual_seed(1)
    cln = ConditionalLayerNorm(8, 4)
    x, c = torch.randn(2, 3, 8), torch.randn(2, 4)
    target = torch.randn(2, 3, 8)
    loss = ((cln(x, c) - target) ** 2).mean()
    loss.backward()
    assert cln.gamma_dense.weight.grad.abs().sum() > 0 and cln.beta_dense.weight.grad.abs().sum() > 0
    with torch.no_grad():
        for p in cln.parameters():
            p -= 0.1 * p.grad
    out_a, out_b = cln(x, c), cln(x, -c)
    assert not torch.allclose(out_a, out_b)


def test_formula_and_per_position_condition():
    torch.manual_seed(2)
    cln = ConditionalLayerNorm(4, 3, eps=1e-5)
    with torch.no_grad():
        cln.gamma_dense.weight.normal_()
        cln.beta_dense.weight.normal_()
    x, c = torch.randn(2, 5, 4), torch.randn(2, 5, 3)
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    want = (x - mean) / torch.sqrt(var + 1e-5) * (1 + c @ cln.gamma_dense.weight.T) + c @ cln.beta_dense.weight.T
    torch.testing.assert_close(cln(x, c), want)
    with pytest.raises(ValueError, match="cond_dim"):
        cln(x, torch.randn(2, 7))
