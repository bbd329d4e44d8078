"""bertlab.nn.crf.CRF against a brute-force oracle (all K^T paths) and against pytorch-crf.

Both exact routes ("loop" and "scan") are tested; "auto" only picks one of them.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bertlab.nn import crf as crf_module
from bertlab.nn.crf import CRF, _viterbi_loop

ROUTES = ("loop", "scan", "compiled")  # "compiled": the numba Viterbi (log Z as "auto")


# ---------------------------------------------------------------------- oracle
def _all_paths(K: int, L: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(K), repeat=L)), dtype=torch.long).reshape(-1, L)


def brute_scores(em, trans, start, end, mask_row, b):
    """Scores [P] of all tag paths over the unmasked steps of row b, and the paths [P, L]."""
    idx = mask_row.nonzero()[:, 0]
    e = em[b, idx]  # shape: [L, K]
    paths = _all_paths(em.shape[-1], len(idx))
    score = e[torch.arange(len(idx)), paths].sum(1)
    if len(idx) > 1:
        score = score + trans[paths[:, :-1], paths[:, 1:]].sum(1)
    if start is not None:
        score = score + start[paths[:, 0]] + end[paths[:, -1]]
    return score, paths


def brute_nll(em, trans, start, end, tags, mask):
    out = []
    for b in range(em.shape[0]):
        score, paths = brute_scores(em, trans, start, end, mask[b], b)
        gold = tags[b, mask[b]]
        gold_score = score[(paths == gold).all(1)][0]
        out.append(torch.logsumexp(score, 0) - gold_score)
    return torch.stack(out)


def brute_decode(em, trans, start, end, mask, first_tag=None, last_tag=None):
    out = torch.full(mask.shape, -1, dtype=torch.long)
    for b in range(em.shape[0]):
        score, paths = brute_scores(em, trans, start, end, mask[b], b)
        if first_tag is not None:
            score = score.masked_fill(paths[:, 0] != first_tag, -math.inf)
        if last_tag is not None and not (paths.shape[1] == 1 and first_tag is not None):
            score = score.masked_fill(paths[:, -1] != last_tag, -math.inf)  # first_tag wins a conflict
        out[b, mask[b]] = paths[score.argmax()]
    return out


def path_score(em, trans, start, end, mask, path):
    """Score [B] of decoded paths (masked positions hold -1)."""
    out = []
    for b in range(em.shape[0]):
        y = path[b, mask[b]]
        s = em[b, mask[b]][torch.arange(len(y)), y].sum() + trans[y[:-1], y[1:]].sum()
        if start is not None:
            s = s + start[y[0]] + end[y[-1]]
        out.append(s)
    return torch.stack(out)


# ---------------------------------------------------------------------- helpers
def make_crf(K, include_start_end, route, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    crf = CRF(K, include_start_end=include_start_end).to(dtype)
    crf.route = route
    with torch.no_grad():
        crf.transitions.normal_()
        if include_start_end:
            crf.start_transitions.normal_()
            crf.end_transitions.normal_()
    return crf


def ragged_mask(B, T, prefix=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    if prefix:
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T
        return torch.arange(T)[None] < lengths[:, None]
    mask = torch.rand(B, T, generator=g) < 0.6
    mask[:, 0] = True
    return mask


def params(crf):
    return crf.transitions, crf.start_transitions, crf.end_transitions


# ---------------------------------------------------------------------- brute force
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("include_start_end", [False, True])
@pytest.mark.parametrize("prefix", [True, False])
def test_nll_equals_brute_force(route, include_start_end, prefix):
    for T, K in [(1, 3), (2, 2), (4, 3), (6, 2), (5, 3)]:
        crf = make_crf(K, include_start_end, route, seed=T * 10 + K)
        em = torch.randn(5, T, K, dtype=torch.float64)
        mask = ragged_mask(5, T, prefix, seed=T)
        tags = torch.randint(K, (5, T)).masked_fill(~mask, -100)  # masked tags must never be read
        got = crf.nll(em, tags, mask, reduction="none")
        want = brute_nll(em, *params(crf), tags, mask)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("include_start_end", [False, True])
@pytest.mark.parametrize("prefix", [True, False])
def test_viterbi_equals_brute_force(route, include_start_end, prefix):
    for T, K in [(1, 3), (2, 2), (4, 3), (6, 2), (5, 3), (3, 4)]:
        crf = make_crf(K, include_start_end, route, seed=T * 10 + K)
        em = torch.randn(6, T, K, dtype=torch.float64)
        mask = ragged_mask(6, T, prefix, seed=T + 1)
        for first, last in [(None, None), (0, None), (None, K - 1), (K - 1, 0)]:
            got = crf.decode(em, mask, first_tag=first, last_tag=last)
            want = brute_decode(em, *params(crf), mask, first, last)
            assert torch.equal(got, want), (T, K, first, last)


@pytest.mark.parametrize("route", ROUTES)
def test_gradients_equal_brute_force(route):
    K, T = 3, 5
    crf = make_crf(K, True, route)
    em = torch.randn(4, T, K, dtype=torch.float64, requires_grad=True)
    mask = ragged_mask(4, T, prefix=False, seed=3)
    tags = torch.randint(K, (4, T))
    weights = torch.rand(4, dtype=torch.float64)  # an uneven upstream gradient
    inputs = [em, *crf.parameters()]
    got = torch.autograd.grad((crf.nll(em, tags, mask, "none") * weights).sum(), inputs)
    want = torch.autograd.grad((brute_nll(em, *params(crf), tags, mask) * weights).sum(), inputs)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)
    assert inputs[1] is crf.transitions and got[1].abs().sum() > 0  # the gradient reaches the transitions


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("include_start_end", [False, True])
def test_gradcheck(route, include_start_end):
    K, T = 3, 4
    crf = make_crf(K, include_start_end, route)
    em = torch.randn(3, T, K, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 1]], dtype=torch.bool)
    tags = torch.randint(K, (3, T))
    names = [n for n, _ in crf.named_parameters()]
    saved = dict(crf._parameters)

    def nll(em, *ps):
        # gradcheck needs the parameters as explicit inputs: swap them in for the call
        crf._parameters.update(zip(names, ps))
        try:
            return crf.nll(em, tags, mask, "none")
        finally:
            crf._parameters.update(saved)

    ps = [p.detach().clone().requires_grad_() for p in crf.parameters()]
    assert torch.autograd.gradcheck(nll, (em, *ps))


# ---------------------------------------------------------------------- ties
@pytest.mark.parametrize("route", ROUTES)
def test_ties_give_an_optimal_consistent_path(route):
    """All-equal scores: every path ties, max-marginals cannot pick one; the fallback must."""
    K, T = 3, 5
    crf = make_crf(K, True, route)
    with torch.no_grad():
        for p in crf.parameters():
            p.zero_()
        crf.transitions[0, 1] = 1.0  # two optimal paths through different tags per position
        crf.transitions[2, 1] = 1.0
    em = torch.zeros(4, T, K, dtype=torch.float64)
    em[:, :, 1] = 0.5
    mask = ragged_mask(4, T, seed=1)
    got = crf.decode(em, mask)
    assert ((got >= 0) == mask).all()
    best = torch.stack([brute_scores(em, *params(crf), mask[b], b)[0].max() for b in range(4)])
    torch.testing.assert_close(path_score(em, *params(crf), mask, got), best)


def test_scan_falls_back_to_the_loop_on_ties(monkeypatch):
    import bertlab.nn.crf as crf_module

    calls = []
    monkeypatch.setattr(crf_module, "_viterbi_loop", lambda *a: calls.append(len(a[0])) or _viterbi_loop(*a))
    crf = make_crf(2, False, "scan")
    with torch.no_grad():
        crf.transitions.copy_(torch.tensor([[-1.0, 0.0], [0.0, -1.0]]))
    em = torch.zeros(3, 2, 2, dtype=torch.float64)
    em[2, 1, 0] = 0.5  # the third row has a unique best path, [1, 0]
    # rows 0 and 1: [0, 1] and [1, 0] tie, so per-step argmaxes of the max-marginals give [0, 0]
    got = crf.decode(em, torch.ones(3, 2, dtype=torch.bool))
    assert calls == [2]
    assert got.tolist() == [[1, 0], [1, 0], [1, 0]]  # back-trace: the first maximum wins


# ---------------------------------------------------------------------- pytorch-crf
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("K", [1, 2, 4, 31])
@pytest.mark.parametrize("include_start_end", [False, True])
def test_matches_pytorch_crf(route, K, include_start_end):
    torchcrf = pytest.importorskip("torchcrf")
    for T in (1, 2, 7, 128):
        for seed in range(3):
            crf = make_crf(K, include_start_end, route, dtype=torch.float32, seed=seed)
            ref = torchcrf.CRF(K, batch_first=True)
            with torch.no_grad():
                ref.transitions.copy_(crf.transitions)
                if include_start_end:
                    ref.start_transitions.copy_(crf.start_transitions)
                    ref.end_transitions.copy_(crf.end_transitions)
                else:
                    ref.start_transitions.zero_()
                    ref.end_transitions.zero_()
            B = 12
            em = 3 * torch.randn(B, T, K)  # continuous: no ties
            mask = ragged_mask(B, T, seed=seed)
            tags = torch.randint(K, (B, T))
            got = -crf.nll(em, tags, mask, reduction="none")
            want = ref(em, tags, mask, reduction="none")
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            paths = crf.decode(em, mask)
            for b, ref_path in enumerate(ref.decode(em, mask)):
                assert paths[b, mask[b]].tolist() == ref_path, (T, seed, b)
                assert (paths[b, ~mask[b]] == -1).all()


@pytest.mark.parametrize("numpy_trace", [True, False])
def test_both_loop_back_traces_match_pytorch_crf(monkeypatch, numpy_trace):
    """The loop route traces back in numpy on CPU and in torch on other devices: force each."""
    torchcrf = pytest.importorskip("torchcrf")
    monkeypatch.setattr(crf_module, "_NUMPY_TRACE", numpy_trace)
    for K in (4, 31):
        for seed in range(2):
            crf = make_crf(K, True, "loop", dtype=torch.float32, seed=seed)
            ref = torchcrf.CRF(K, batch_first=True)
            with torch.no_grad():
                ref.transitions.copy_(crf.transitions)
                ref.start_transitions.copy_(crf.start_transitions)
                ref.end_transitions.copy_(crf.end_transitions)
            em = 3 * torch.randn(9, 40, K)
            mask = ragged_mask(9, 40, seed=seed)
            paths = crf.decode(em, mask)
            for b, ref_path in enumerate(ref.decode(em, mask)):
                assert paths[b, mask[b]].tolist() == ref_path
                assert (paths[b, ~mask[b]] == -1).all()


@pytest.mark.parametrize("route", ROUTES)
def test_large_emissions_are_stable(route):
    """Emissions of size 8-10 and long sequences: exp-space rescaling must hold up."""
    K, T = 5, 256
    crf = make_crf(K, True, route, dtype=torch.float32)
    em = 10 * torch.randn(8, T, K)
    mask = ragged_mask(8, T)
    tags = torch.randint(K, (8, T))
    got = crf.nll(em, tags, mask, "none")
    crf64 = make_crf(K, True, route)
    crf64.load_state_dict({k: v.double() for k, v in crf.state_dict().items()})
    want = crf64.nll(em.double(), tags, mask, "none")
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-3)
    em.requires_grad_()
    crf.nll(em, tags, mask).backward()
    assert torch.isfinite(em.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_default_route_agrees_with_both_routes():
    for K, T in [(3, 40), (6, 40), (3, 5)]:  # the CPU choice flips between these
        crf = make_crf(K, True, "auto", dtype=torch.float32, seed=K)
        assert crf.route == "auto"
        em = 2 * torch.randn(6, T, K)
        mask = ragged_mask(6, T, seed=K)
        tags = torch.randint(K, (6, T))
        nll, paths = crf.nll(em, tags, mask, "none"), crf.decode(em, mask, 0, 0)
        for route in ROUTES:
            crf.route = route
            torch.testing.assert_close(crf.nll(em, tags, mask, "none"), nll, rtol=1e-5, atol=1e-5)
            assert torch.equal(crf.decode(em, mask, 0, 0), paths)
        crf.route = "auto"


# ---------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("route", ROUTES)
def test_masked_tail_and_batch_of_one(route):
    K = 3
    crf = make_crf(K, True, route)
    em = torch.randn(2, 7, K, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0] = True
    mask[1, 0] = True  # a length-1 sequence next to a full one
    tags = torch.randint(K, (2, 7)).masked_fill(~mask, 0)
    nll = crf.nll(em, tags, mask, "none")
    torch.testing.assert_close(nll, brute_nll(em, *params(crf), tags, mask))
    nll.sum().backward()
    assert (em.grad[1, 1:] == 0).all()  # masked emissions get no gradient
    paths = crf.decode(em, mask)
    assert (paths[1, 1:] == -1).all() and paths[1, 0] >= 0
    assert torch.equal(paths, brute_decode(em.detach(), *params(crf), mask))
    # batch of one, and a length-1 batch
    one = crf.nll(em[:1], tags[:1], mask[:1], "none")
    torch.testing.assert_close(one, nll[:1])
    assert torch.equal(crf.decode(em[1:, :1], mask[1:, :1]), paths[1:, :1])


@pytest.mark.parametrize("route", ROUTES)
def test_reductions(route):
    crf = make_crf(4, False, route)
    em = torch.randn(3, 6, 4, dtype=torch.float64)
    mask = ragged_mask(3, 6)
    tags = torch.randint(4, (3, 6))
    none = crf.nll(em, tags, mask, reduction="none")
    assert none.shape == (3,) and (none > 0).all()
    torch.testing.assert_close(crf.nll(em, tags, mask, reduction="sum"), none.sum())
    torch.testing.assert_close(crf.nll(em, tags, mask), none.mean())
    # an integer 0/1 mask means the same
    torch.testing.assert_close(crf.nll(em, tags, mask.long(), reduction="none"), none)


def test_half_precision_emissions():
    crf = make_crf(4, True, "loop", dtype=torch.float32)
    em = torch.randn(2, 5, 4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    tags = torch.randint(4, (2, 5))
    got = crf.nll(em.half(), tags, mask, "none")
    torch.testing.assert_close(got, crf.nll(em.half().float(), tags, mask, "none"))
    assert torch.equal(crf.decode(em.half(), mask), crf.decode(em.half().float(), mask))


def test_parameters_and_init():
    crf = CRF(31)
    assert crf.transitions.shape == (31, 31)
    assert crf.start_transitions is None and crf.end_transitions is None
    bound = math.sqrt(6 / 62)
    assert crf.transitions.abs().max() <= bound and crf.transitions.std() > bound / 3
    with_se = CRF(4, include_start_end=True)
    assert with_se.start_transitions.shape == (4,) and with_se.end_transitions.shape == (4,)
    assert len(list(with_se.parameters())) == 3


def test_value_errors():
    crf = CRF(4)
    em = torch.randn(2, 3, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    tags = torch.zeros(2, 3, dtype=torch.long)
    cases = [
        (lambda: crf.nll(torch.randn(2, 3), tags, mask), "emissions must have shape"),
        (lambda: crf.nll(torch.randn(2, 3, 5), tags, mask), "emissions must have shape"),
        (lambda: crf.nll(em.long(), tags, mask), "float"),
        (lambda: crf.nll(torch.randn(2, 0, 4), tags[:, :0], mask[:, :0]), "non-empty"),
        (lambda: crf.nll(em, tags, mask[:, :2]), "mask must have shape"),
        (lambda: crf.nll(em, tags, mask.float()), "mask must be bool"),
        (lambda: crf.nll(em, tags[:, :2], mask), "tags must have shape"),
        (lambda: crf.nll(em, tags.float(), mask), "integer"),
        (lambda: crf.nll(em, tags, mask, reduction="avg"), "unknown reduction"),
        (lambda: crf.decode(em, mask, first_tag=4), "first_tag"),
        (lambda: crf.decode(em, mask, last_tag=-1), "last_tag"),
        (lambda: CRF(0), "num_tags"),
    ]
    bad_first = mask.clone()
    bad_first[1, 0] = False
    cases += [
        (lambda: crf.nll(em, tags, bad_first), r"mask\[:, 0\]"),
        (lambda: crf.decode(em, bad_first), r"mask\[:, 0\]"),
    ]
    out_of_range = tags.clone()
    out_of_range[1, 2] = 4
    cases += [(lambda: crf.nll(em, out_of_range, mask), r"tags\[1, 2\] = 4")]
    for fn, message in cases:
        with pytest.raises(ValueError, match=message):
            fn()
    crf.route = "fast"
    with pytest.raises(ValueError, match="route"):
        crf.nll(em, tags, mask)
    # out-of-range tags are fine where the mask is False
    crf.route = "auto"
    partial = mask.clone()
    partial[1, 2] = False
    assert torch.isfinite(crf.nll(em, out_of_range, partial))


def test_compiled_route_choice_and_fallback_without_numba(monkeypatch):
    from bertlab.nn import crf_kernels

    crf = make_crf(4, True, "auto", dtype=torch.float32)
    em, mask = 3 * torch.randn(5, 20, 4), ragged_mask(5, 20)
    if crf_kernels.available():
        assert crf._route(em, decoding=True) == "compiled"
    assert crf._route(em) in ("loop", "scan")  # log Z: never the compiled route
    want = crf.decode(em, mask)
    monkeypatch.setattr(crf_kernels, "viterbi_kernel", None)  # as without numba
    assert crf._route(em, decoding=True) in ("loop", "scan")
    assert torch.equal(crf.decode(em, mask), want)
    crf.route = "compiled"
    with pytest.raises(ValueError, match="needs CPU tensors and numba"):
        crf.decode(em, mask)
