"""Decoding: top-k/top-p filtering properties, seeds, banned ids, [SEP] stops, beam search
vs brute force on a toy LM, and a cached toy LM giving the same tokens as an uncached one."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bertlab.decoding.sampling import beam_search, filter_top_k, filter_top_p, generate, sample

V, EOS, PAD, BOS = 6, 3, 0, 2
BANNED = (PAD, 1, BOS)  # like [PAD]/[UNK]/[CLS]


class ToyLM:
    """A random GRU language model: ``full`` re-encodes the prefix, ``cached`` keeps the GRU
    state per row (a stand-in for a key/value cache) and only runs the new tokens."""

    def __init__(self, seed=0, vocab=V, sharp=3.0):
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.randn(vocab, 8, generator=g)
        self.gru = torch.nn.GRU(8, 8, batch_first=True)
        for prm in self.gru.parameters():
            prm.data = torch.randn(prm.shape, generator=g)
        self.out = torch.randn(8, vocab, generator=g) * sharp
        self.calls = []

    @torch.no_grad()
    def full(self, tokens, state):
        self.calls.append(tokens.shape)
        h, _ = self.gru(self.emb[tokens])
        return h[:, -1] @ self.out, None

    @torch.no_grad()
    def cached(self, tokens, state):
        seen, h = state if state is not None else (0, None)
        new = tokens[:, seen:]
        self.calls.append(new.shape)
        o, h = self.gru(self.emb[new], h)
        return o[:, -1] @ self.out, (tokens.size(1), h)

    @staticmethod
    def select(state, idx):
        seen, h = state
        return seen, h[:, idx]

    def logprob(self, prefix, nxt):
        logits, _ = self.full(torch.tensor([prefix]), None)
        logits = logits[0].clone()
        logits[list(BANNED)] = -math.inf
        return float(logits.log_softmax(-1)[nxt])


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.randn(50, 30)
    out = filter_top_k(logits, 4)
    kept = torch.isfinite(out)
    assert (kept.sum(-1) == 4).all()
    thresh = logits.topk(4, dim=-1).values[:, -1:]
    assert (logits[kept] >= thresh.expand_as(logits)[kept]).all()
    assert torch.equal(out[kept], logits[kept])
    with pytest.raises(ValueError, match="k must be in \\[1, 30\\].*got 31"):
        filter_top_k(logits, 31)


def test_top_p_keeps_the_smallest_set_with_mass_at_least_p():
    torch.manual_seed(0)
    logits = torch.randn(200, 12) * 2
    for p in (0.1, 0.5, 0.9, 0.99, 1.0):
        out = filter_top_p(logits, p)
        probs = logits.softmax(-1)
        kept = torch.isfinite(out)
        mass = (probs * kept).sum(-1)
        smallest_kept = probs.masked_fill(~kept, 2).min(-1).values
        largest_dropped = probs.masked_fill(kept, -1).max(-1).values
        assert (mass >= p - 1e-6).all()
        assert (mass - smallest_kept < p + 1e-6).all()  # removing any kept token drops below p
        assert (largest_dropped <= smallest_kept).all()  # the kept set is a top set
    assert int(torch.isfinite(filter_top_p(torch.tensor([[5.0, 0, 0]]), 0.01)).sum()) == 1


def test_top_k_sampling_never_leaves_the_top_k_and_avoids_banned_tokens():
    lm = ToyLM(seed=3, vocab=20, sharp=1.0)
    seen_logits = []

    def step(tokens, state):
        logits, _ = lm.full(tokens, state)
        seen_logits.append((tokens.clone(), logits.clone()))
        return logits, None

    prompt = torch.full((30, 1), BOS)
    sample(step, prompt, strategy="topk", k=3, max_len=8, eos_id=EOS, banned_ids=BANNED, seed=1)
    n_checked = 0
    for i in range(1, len(seen_logits)):
        prev_tokens, logits = seen_logits[i - 1]
        tokens, _ = seen_logits[i]
        chosen = tokens[:, -1]
        if tokens.size(0) != prev_tokens.size(0):  # rows finished: match rows by prefix
            continue
        allowed = logits.clone()
        allowed[:, list(BANNED)] = -math.inf
        top = allowed.topk(3, dim=-1).indices
        assert (top == chosen[:, None]).any(-1).all()
        assert not any(int(c) in BANNED for c in chosen)
        n_checked += chosen.numel()
    assert n_checked > 50


def test_seeds_reproduce_and_differ():
    lm = ToyLM(seed=1, vocab=30, sharp=0.5)
    prompt = torch.full((8, 1), BOS)
    kw = dict(max_len=12, eos_id=EOS, banned_ids=BANNED)
    for strategy in ("topk", "topp", "temperature"):
        a = generate(lm.full, prompt, strategy=strategy, seed=7, **kw)
        b = generate(lm.full, prompt, strategy=strategy, seed=7, **kw)
        c = generate(lm.full, prompt, strategy=strategy, seed=8, **kw)
        assert a == b and a != c, strategy


def test_top_k_1_equals_greedy_and_stops_at_eos_or_max_len():
    lm = ToyLM(seed=2)
    prompt = torch.full((4, 1), BOS)
    greedy = generate(lm.full, prompt, strategy="greedy", max_len=10, eos_id=EOS, banned_ids=BANNED)
    assert generate(lm.full, prompt, strategy="topk", k=1, seed=5, max_len=10, eos_id=EOS, banned_ids=BANNED) == greedy
    # the greedy answer, by hand: follow the argmax until EOS or 10 tokens
    prefix = [BOS]
    for _ in range(10):
        logits, _ = lm.full(torch.tensor([prefix]), None)
        logits[0, list(BANNED)] = -math.inf
        t = int(logits.argmax())
        if t == EOS:
            break
        prefix.append(t)
    assert greedy[0] == prefix[1:]
    assert all(len(g) <= 10 and EOS not in g for g in greedy)


def test_only_the_needed_rows_and_positions_run_with_a_cache():
    lm = ToyLM(seed=4, sharp=0.7)
    prompt = torch.full((16, 1), BOS)
    kw = dict(max_len=9, eos_id=EOS, banned_ids=BANNED)
    for strategy in ("greedy", "topk", "topp"):
        lm.calls.clear()
        full = generate(lm.full, prompt, strategy=strategy, seed=3, **kw)
        lm.calls.clear()
        cached = generate(lm.cached, prompt, strategy=strategy, seed=3, state=None, select=lm.select, **kw)
        assert cached == full, strategy
        assert all(shape[1] == 1 for shape in lm.calls)  # one new position per step
        assert [s[0] for s in lm.calls] == sorted((s[0] for s in lm.calls), reverse=True)  # finished rows dropped


def _brute_force(lm, max_len):
    allowed = [t for t in range(V) if t not in BANNED]
    best = (-math.inf, None)
    for n in range(0, max_len + 1):
        for body in itertools.product([t for t in allowed if t != EOS], repeat=n):
            seq = list(body) + ([EOS] if n < max_len else [])
            prefix, score = [BOS], 0.0
            for t in seq:
                score += lm.logprob(prefix, t)
                prefix.append(t)
            if score > best[0]:
                best = (score, list(body))
    return best


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_beam_search_equals_the_brute_force_best_sequence(seed):
    lm = ToyLM(seed=seed, sharp=1.0)
    max_len = 4
    score, tokens = _brute_force(lm, max_len)
    got = beam_search(
        lm.full, torch.tensor([[BOS]]), beam_size=3**max_len, max_len=max_len, eos_id=EOS, banned_ids=BANNED
    )[0][0]
    assert got[1] == tokens and got[0] == pytest.approx(score, abs=1e-5)
    cached = beam_search(
        lm.cached,
        torch.tensor([[BOS]]),
        beam_size=3**max_len,
        max_len=max_len,
        eos_id=EOS,
        banned_ids=BANNED,
        state=None,
        select=lm.select,
    )[0][0]
    assert cached[1] == tokens
    # a narrow beam never beats the exact answer
    narrow = beam_search(lm.full, torch.tensor([[BOS]]), beam_size=2, max_len=max_len, eos_id=EOS, banned_ids=BANNED)[
        0
    ][0]
    assert narrow[0] <= score + 1e-6


def test_beam_1_equals_greedy():
    for seed in range(6):
        lm = ToyLM(seed=seed)
        prompt = torch.full((2, 1), BOS)
        kw = dict(max_len=7, eos_id=EOS, banned_ids=BANNED)
        assert generate(lm.full, prompt, strategy="beam", beam_size=1, **kw) == generate(
            lm.full, prompt, strategy="greedy", **kw
        )


def test_bad_arguments_name_the_value():
    lm = ToyLM()
    prompt = torch.full((1, 1), BOS)
    with pytest.raises(ValueError, match="strategy must be one of"):
        generate(lm.full, prompt, strategy="nucleus", eos_id=EOS)
    with pytest.raises(ValueError, match="got 7"):
        generate(lm.full, prompt, strategy="topk", k=7, eos_id=EOS)
    with pytest.raises(ValueError, match="p must be in"):
        generate(lm.full, prompt, strategy="topp", p=1.5, eos_id=EOS)
    with pytest.raises(ValueError, match="max_len must be >= 1, got 0"):
        generate(lm.full, prompt, strategy="greedy", max_len=0, eos_id=EOS)
