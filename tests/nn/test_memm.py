"""MEMM head: loss against a plain per-token computation, decoding against brute force."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bertlab.nn.memm import MEMM


def _log_softmax(v: list[float]) -> list[float]:
    m = max(v)
    lse = m + math.log(sum(math.exp(x - m) for x in v))
    return [x - lse for x in v]


def _plain_directions(em: list[list[float]], trans: list[list[float]], y: list[int]) -> tuple[list[float], list[float]]:
    """Forward and backward token cross-entropies of one (unmasked) sequence, written out."""
    n, K = len(y), len(trans)
    fwd, bwd = [], []
    for t in range(n):
        logits = em[t] if t == 0 else [(em[t][j] + trans[y[t - 1]][j]) / 2 for j in range(K)]
        fwd.append(-_log_softmax(logits)[y[t]])
    for t in range(n):
        logits = em[t] if t == n - 1 else [(em[t][i] + trans[i][y[t + 1]]) / 2 for i in range(K)]
        bwd.append(-_log_softmax(logits)[y[t]])
    return fwd, bwd


def _log_likelihood(em, trans, y) -> float:
    fwd, bwd = _plain_directions(em, trans, y)
    return -sum(fwd) - sum(bwd)


def _rows(emissions, mask, tags=None):
    """The unmasked steps of every row, as plain lists."""
    out = []
    for b in range(emissions.shape[0]):
        idx = mask[b].nonzero()[:, 0].tolist()
        em = emissions[b, idx].tolist()
        out.append((idx, em, tags[b, idx].tolist() if tags is not None else None))
    return out


def _batch(B, T, K, seed, ragged_mask=False):
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(B, T, K, generator=g, dtype=torch.float64) * 2
    tags = torch.randint(0, K, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None] < lengths[:, None]
    if ragged_mask:  # holes inside rows too (first column stays on)
        mask = mask & (torch.rand(B, T, generator=g) < 0.7)
        mask[:, 0] = True
    tags = tags.masked_fill(~mask, -100)
    return emissions, tags, mask


@pytest.mark.parametrize("ragged_mask", [False, True])
def test_nll_matches_plain_per_token_computation(ragged_mask):
    K = 4
    memm = MEMM(K).double()
    emissions, tags, mask = _batch(6, 7, K, seed=1 + ragged_mask, ragged_mask=ragged_mask)
    trans = memm.transitions.tolist()
    per_seq, n_tokens, fwd_total, bwd_total = [], 0, 0.0, 0.0
    for _, em, y in _rows(emissions, mask, tags):
        fwd, bwd = _plain_directions(em, trans, y)
        per_seq.append(sum((f + b) / 2 for f, b in zip(fwd, bwd)))
        n_tokens += len(y)
        fwd_total += sum(fwd)
        bwd_total += sum(bwd)
    # bert4keras: each direction is a masked mean over tokens, the loss their average
    expected_mean = (fwd_total / n_tokens + bwd_total / n_tokens) / 2
    assert memm.nll(emissions, tags, mask, "none").tolist() == pytest.approx(per_seq, rel=1e-12)
    assert memm.nll(emissions, tags, mask, "sum").item() == pytest.approx(sum(per_seq), rel=1e-12)
    assert memm.nll(emissions, tags, mask).item() == pytest.approx(expected_mean, rel=1e-12)


def test_nll_single_step_and_float32():
    memm = MEMM(3)
    em = torch.randn(2, 1, 3)
    tags = torch.tensor([[2], [0]])
    mask = torch.ones(2, 1, dtype=torch.bool)
    expected = -torch.log_softmax(em[:, 0], -1).gather(1, tags)[:, 0]  # both directions = softmax(e_0)
    torch.testing.assert_close(memm.nll(em, tags, mask, "none"), expected)
    assert memm.nll(em.half(), tags, mask).dtype == torch.float32


def test_gradients_reach_transitions_and_emissions():
    memm = MEMM(5)
    emissions, tags, mask = _batch(3, 6, 5, seed=3)
    emissions = emissions.float().requires_grad_()
    memm.nll(emissions, tags, mask).backward()
    assert memm.transitions.grad is not None and memm.transitions.grad.abs().sum() > 0
    assert emissions.grad.abs().sum() > 0
    assert emissions.grad[~mask].abs().sum() == 0  # padding gets no gradient


def _brute_force(em, trans, K, first_tag=None, last_tag=None):
    n = len(em)
    best, best_y = -math.inf, None
    for y in itertools.product(range(K), repeat=n):
        if first_tag is not None and y[0] != first_tag:
            continue
        if last_tag is not None and y[-1] != last_tag and not (n == 1 and first_tag is not None):
            continue
        ll = _log_likelihood(em, trans, list(y))
        if ll > best:
            best, best_y = ll, list(y)
    return best, best_y


@pytest.mark.parametrize("ragged_mask", [False, True])
@pytest.mark.parametrize("forced", [(None, None), (1, None), (None, 2), (0, 2)])
def test_decode_equals_brute_force(ragged_mask, forced):
    K = 3
    first_tag, last_tag = forced
    for seed in range(3):
        memm = MEMM(K).double()
        with torch.no_grad():
            memm.transitions.mul_(3)  # strong transitions, so the pairwise terms matter
        emissions, _, mask = _batch(5, 5, K, seed=10 * seed + ragged_mask, ragged_mask=ragged_mask)
        path = memm.decode(emissions, mask, first_tag=first_tag, last_tag=last_tag)
        assert path.shape == mask.shape and path.dtype == torch.long
        assert (path[~mask] == -1).all()
        trans = memm.transitions.tolist()
        for b, (idx, em, _) in enumerate(_rows(emissions, mask)):
            best, best_y = _brute_force(em, trans, K, first_tag, last_tag)
            got = path[b, idx].tolist()
            assert _log_likelihood(em, trans, got) == pytest.approx(best, abs=1e-9)
            assert got == best_y


def test_decode_one_step_conflicting_forced_tags_first_wins():
    memm = MEMM(3)
    em = torch.randn(2, 2, 3)
    mask = torch.tensor([[True, False], [True, True]])
    path = memm.decode(em, mask, first_tag=1, last_tag=2)
    assert path[0].tolist() == [1, -1]
    assert path[1].tolist() == [1, 2]


def test_log_likelihood_is_what_decode_maximises():
    memm = MEMM(3).double()
    emissions, tags, mask = _batch(4, 4, 3, seed=7)
    best = memm.decode(emissions, mask)
    ll_best = memm.log_likelihood(emissions, best.clamp(min=0), mask)
    ll_gold = memm.log_likelihood(emissions, tags.clamp(min=0), mask)
    assert (ll_best >= ll_gold - 1e-12).all()


def test_bad_inputs_raise_value_error():
    memm = MEMM(4)
    em = torch.randn(2, 3, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    tags = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError):
        memm.nll(torch.randn(2, 3, 5), tags, mask)
    with pytest.raises(ValueError):
        memm.nll(torch.randn(2, 3), tags, mask)
    with pytest.raises(ValueError):
        memm.nll(em, tags[:, :2], mask)
    with pytest.raises(ValueError):
        memm.nll(em, tags, mask[:, :2])
    with pytest.raises(ValueError):
        memm.nll(em, tags.float(), mask)
    with pytest.raises(ValueError):
        memm.nll(em, tags + 4, mask)
    with pytest.raises(ValueError):
        memm.nll(em, tags, mask, reduction="avg")
    with pytest.raises(ValueError):
        memm.decode(em, torch.tensor([[False, True, True], [True, True, True]]))
    with pytest.raises(ValueError):
        memm.decode(em, mask, first_tag=4)
    with pytest.raises(ValueError):
        memm.decode(torch.randn(0, 3, 4), torch.ones(0, 3, dtype=torch.bool))
    with pytest.raises(ValueError):
        MEMM(0)
