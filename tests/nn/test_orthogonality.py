"""SOM estimator and penalties against hand-computed values and 1 - 2 theta / pi; the hooks helper."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from bertlab.nn.orthogonality import (
    OrthogonalityPenalty,
    biggan_orthogonality,
    gram_deviation,
    kernel_of,
    kernel_statistics,
    mean_sq_cosine,
    soft_orthogonality,
    som_penalty,
    som_theta,
)
from bertlab.utils.errors import ConfigError

D = torch.double


def _fan(angles: torch.Tensor, d: int = 8) -> torch.Tensor:
    """Unit filters in the (e0, e1) plane at the given angles from e0: kernel [d, k]."""
    w = torch.zeros(d, len(angles), dtype=D)
    w[0], w[1] = torch.cos(angles), torch.sin(angles)
    return w


ANGLES = torch.tensor([0, math.pi / 6, math.pi / 3, math.pi / 2, 2 * math.pi / 3, 5 * math.pi / 6, math.pi], dtype=D)


def test_theta_estimates_one_minus_two_angle_over_pi():
    """Gaussian inputs, 100k rows. Tolerances: the sampling error of a sign correlation is
    <= 1/sqrt(N) ~ 0.003; tanh(10 y) is not quite sgn(y) where |y| < ~0.2, which pulls the
    estimate towards the plain correlation cos(theta): measured bias <= 0.05 for unit-scale
    x.w, <= 0.008 when x.w has scale 10."""
    torch.manual_seed(0)
    x = torch.randn(100_000, 8, dtype=D)
    w = _fan(ANGLES)
    target = 1 - 2 * (ANGLES[:, None] - ANGLES[None, :]).abs() / math.pi
    s = torch.sign(x @ w)
    monte_carlo = s.t() @ s / x.shape[0]  # the quantity Theta estimates, on the same data
    torch.testing.assert_close(monte_carlo, target, atol=0.01, rtol=0)
    theta = som_theta(x, w)
    torch.testing.assert_close(torch.diagonal(theta), torch.ones(7, dtype=D))
    torch.testing.assert_close(theta, target, atol=0.06, rtol=0)
    sharp = som_theta(10 * x, w)
    torch.testing.assert_close(sharp, target, atol=0.015, rtol=0)
    torch.testing.assert_close(sharp, monte_carlo, atol=0.01, rtol=0)
    # the estimate is larger in magnitude than the target (between it and cos theta), never the other way
    off = ~torch.eye(7, dtype=torch.bool)
    assert (theta[off].abs() >= target[off].abs() - 0.005).all()


def test_hand_computed_som_penalty():
    # w = I: Y = tanh(10) X; the columns [1,1,-1,1]/2 and [1,1,-1,-1]/2 after normalisation
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], dtype=D)
    w = torch.eye(2, dtype=D)
    theta = som_theta(x, w)
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=D))
    # off-diagonal sum 1.0 -> 100 * 1^2 + 1 * (0.25 + 0.25)
    assert som_penalty(x, w).item() == pytest.approx(100.5, rel=1e-9)
    assert som_penalty(x, w, lambda1=2.0, lambda2=3.0).item() == pytest.approx(2.0 + 1.5, rel=1e-9)


def test_orthogonal_filters_on_whitened_inputs_give_zero():
    # all 2^6 sign vectors: exactly whitened, and a signed permutation (orthogonal) kernel
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6)), dtype=D)
    w = torch.eye(6, dtype=D)[torch.tensor([3, 0, 5, 1, 4, 2])] * torch.tensor([1, -1, 1, 1, -1, 1], dtype=D)
    assert som_penalty(x, w).item() == pytest.approx(0.0, abs=1e-18)
    assert soft_orthogonality(w).item() == pytest.approx(0.0, abs=1e-18)
    # a random orthogonal kernel on Gaussian inputs: small next to correlated filters
    torch.manual_seed(0)
    g = torch.randn(50_000, 16, dtype=D)
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=D))
    corr = q + 0.5 * q[:, :1]  # every filter leans towards the first
    assert som_penalty(g, q).item() < 1e-3 * som_penalty(g, corr).item()


def test_baselines_hand_computed():
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=D)  # W^T W = [[2, 1], [1, 1]]
    assert soft_orthogonality(w).item() == pytest.approx(3.0)  # (W^TW - I) = [[1,1],[1,0]]
    assert biggan_orthogonality(w).item() == pytest.approx(2.0)
    scaled = torch.diag(torch.tensor([3.0, 0.5], dtype=D))  # orthogonal filters of any norm
    assert biggan_orthogonality(scaled).item() == pytest.approx(0.0, abs=1e-15)
    assert soft_orthogonality(scaled).item() == pytest.approx((9 - 1) ** 2 + (0.25 - 1) ** 2)
    # post 3's statistic: mean over the n x n entries of (W^T W - I)^2, W = [m, n]
    assert gram_deviation(w).item() == pytest.approx(3.0 / 4)


def test_kernel_statistics_split_the_gram_deviation_into_norms_and_angles():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=D, generator=torch.Generator().manual_seed(0)))
    st = kernel_statistics(q)  # orthogonal: every part 0
    assert st["gram_side"] == "columns"
    for k in ("gram_dev", "gram_diag", "gram_offdiag_cos2", "filter_cos2"):
        assert st[k] == pytest.approx(0.0, abs=1e-12), k
    st = kernel_statistics(2 * q)  # scaled orthogonal: angles 0, norms off: (4 - 1)^2 = 9
    assert st["gram_offdiag_cos2"] == pytest.approx(0.0, abs=1e-12) and st["filter_cos2"] == pytest.approx(0, abs=1e-12)
    assert st["gram_diag"] == pytest.approx(9.0) and st["gram_dev"] == pytest.approx(9.0 * 6 / 36)
    # two equal columns (tall 3 x 2): cosine 1 -> the one pair's squared cosine is 1; norms 1 -> diag 0
    w = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=D)
    st = kernel_statistics(w)
    assert st["gram_side"] == "columns" and st["gram_offdiag_cos2"] == pytest.approx(1.0)
    assert st["gram_diag"] == pytest.approx(0.0)
    # W^T W = [[1, 1], [1, 1]]: (W^T W - I)^2 has two off-diagonal ones -> mean 2 / 4
    assert st["gram_dev"] == pytest.approx(0.5)
    # rows [1, 1], [0, 0], [0, 0]: the zero rows have cosine 0 with everything -> 0 over 6 pairs
    assert st["filter_cos2"] == pytest.approx(0.0)
    # hand-made angles: columns (1, 0) and (1, 1) -> cos^2 45 deg = 1/2; norms^2 1 and 2 -> diag (0 + 1) / 2
    st = kernel_statistics(torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=D))
    assert st["gram_offdiag_cos2"] == pytest.approx(0.5) and st["gram_diag"] == pytest.approx(0.5)
    # rows (1, 1) and (0, 1): cos^2 = 1/2 as well
    assert st["filter_cos2"] == pytest.approx(0.5)


def test_wide_kernels_use_the_smaller_gram_matrix():
    # W [2, 4]: W^T W (4 x 4, rank 2) cannot be I; the rows are orthonormal -> W W^T = I
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], dtype=D)
    st = kernel_statistics(w)
    assert st["gram_side"] == "rows"
    assert st["gram_diag"] == pytest.approx(0.0) and st["gram_offdiag_cos2"] == pytest.approx(0.0)
    assert st["gram_dev"] == pytest.approx(2 / 16)  # the full statistic still sees two missing ones
    assert mean_sq_cosine(torch.ones(3, 1, dtype=D)).item() == 0.0  # one vector: no pair


@pytest.mark.parametrize("n_rows", [5, 40])
def test_gram_trick_equals_the_direct_formula(n_rows):
    torch.manual_seed(n_rows)
    x, w = torch.randn(n_rows, 6, dtype=D), torch.randn(6, 12, dtype=D) / 3
    theta = som_theta(x, w)
    off = theta - torch.diag(torch.diagonal(theta))
    direct = 100 * off.sum() ** 2 + off.pow(2).sum()
    torch.testing.assert_close(som_penalty(x, w), direct)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.blocks = nn.ModuleList([nn.Linear(6, 6), nn.Linear(6, 6)])
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        for block in self.blocks:
            h = torch.tanh(block(h))
        return self.out(h)


def test_hooks_capture_the_right_inputs_with_mask_and_detach_cleanly():
    torch.manual_seed(0)
    net = Net().double()
    pen = OrthogonalityPenalty(net, ["blocks.*"], kind="som", weight=0.5, max_rows=None)
    assert sorted(pen.layers) == ["blocks.0", "blocks.1"]
    x = torch.randn(3, 5, 4, dtype=D)  # [B, T, d]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    pen.set_mask(mask)
    net(x)
    with torch.no_grad():
        h0 = torch.tanh(net.inp(x))[mask]
        h1 = torch.tanh(net.blocks[0](torch.tanh(net.inp(x))))[mask]
    want = som_penalty(h0, kernel_of(net.blocks[0])) + som_penalty(h1, kernel_of(net.blocks[1]))
    got = pen()
    torch.testing.assert_close(got, 0.5 * want)
    assert set(pen.values) == {"blocks.0", "blocks.1"}
    got.backward()  # gradients reach the kernels
    assert net.blocks[0].weight.grad is not None and net.inp.weight.grad is None  # inputs detached
    # nothing is captured in eval mode or without grad
    net.eval()
    net(x)
    net.train()
    with torch.no_grad():
        net(x)
    with pytest.raises(RuntimeError, match="no inputs captured"):
        pen()
    pen.remove()
    assert all(not b._forward_hooks for b in net.blocks)
    net(x)
    assert not pen._inputs


def test_zero_weight_and_none_change_nothing():
    torch.manual_seed(0)
    net = Net()
    for pen in (
        OrthogonalityPenalty(net, ["blocks.*"], kind="som", weight=0.0),
        OrthogonalityPenalty(net, [], kind="none", weight=1.0),
    ):
        assert not pen.active and not pen.layers
        assert all(not m._forward_hooks for m in net.modules())
        loss = net(torch.randn(4, 4)).sum() + pen()
        assert pen().item() == 0.0 and torch.isfinite(loss)


def test_minimising_each_penalty_makes_filters_more_orthogonal():
    torch.manual_seed(0)
    x = torch.randn(2000, 6)
    for kind in ("som", "soft", "biggan"):
        layer = nn.Linear(6, 6)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(6) + 0.6)  # strongly correlated filters
        pen = OrthogonalityPenalty(nn.Sequential(layer), ["0"], kind=kind, weight=1.0)
        opt = torch.optim.Adam(layer.parameters(), lr=0.02)
        w0 = layer.weight.detach().clone()
        for _ in range(150):
            opt.zero_grad()
            layer(x)
            pen().backward()
            opt.step()

        def cos(w):
            u = nn.functional.normalize(w, dim=1)
            return (u @ u.t() - torch.eye(6)).abs().max()

        assert cos(layer.weight.detach()) < 0.5 * cos(w0), kind


def test_bad_config_is_one_clear_error():
    net = Net()
    with pytest.raises(ConfigError, match=r"model.orthogonality.patterns'.*'decoder' matches no Linear"):
        OrthogonalityPenalty(net, ["blocks.*", "decoder"], kind="som")
    with pytest.raises(ConfigError, match=r"model.orthogonality.kind'.*'srip'"):
        OrthogonalityPenalty(net, ["blocks.*"], kind="srip")
    with pytest.raises(ConfigError, match=r"model.orthogonality.weight'"):
        OrthogonalityPenalty(net, ["blocks.*"], kind="soft", weight=-1)
    with pytest.raises(ConfigError, match=r"model.orthogonality.patterns'.*at least one"):
        OrthogonalityPenalty(net, [], kind="soft", weight=1)
