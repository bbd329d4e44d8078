"""Constrained MLM decoding and voting: crafted examples and a brute-force oracle."""

from __future__ import annotations

import random

import pytest
import torch

from bertlab.decoding.constrained import (
    PrefixConstraint,
    argmax_decode,
    best_answer,
    constrained_decode,
    decode_batch,
    find_run,
    vote,
)

END = 0


def _probs(rows: list[dict[int, float]], vocab: int = 10) -> torch.Tensor:
    """Slot distributions from {token: prob}; the rest of each row spread evenly (tiny)."""
    out = torch.full((len(rows), vocab), 1e-4)
    for k, row in enumerate(rows):
        for t, p in row.items():
            out[k, t] = p
    return out


def test_a_passage_ngram_wins_over_a_likelier_token_that_is_not_one():
    passage = [5, 6, 7, 5, 8]
    probs = _probs([{9: 0.7, 5: 0.2}, {7: 0.6, 6: 0.3, 8: 0.05}, {END: 0.5, 7: 0.4}, {}])
    ans = constrained_decode(probs, passage, END)
    # slot 0: 9 is not in the passage -> 5; slot 1: "5 7" is no n-gram, "5 6" and "5 8" are -> 6;
    # slot 2: [SEP] beats 7 -> stop
    assert ans.tokens == [5, 6]
    assert ans.probs == pytest.approx([0.2, 0.3, 0.5])
    assert ans.score == pytest.approx((0.2 + 0.3 + 0.5) / 3)  # the [SEP] probability counts
    assert ans.start == 0
    # unconstrained: the likelier tokens, [SEP] at slot 2
    free = argmax_decode(probs, END, passage)
    assert free.tokens == [9, 7] and free.start == -1


def test_sep_first_gives_the_empty_answer():
    ans = constrained_decode(_probs([{END: 0.9, 5: 0.05}, {5: 0.9}]), [5, 6], END)
    assert ans.tokens == [] and ans.start == -1 and ans.score == pytest.approx(0.9)


def test_decoding_stops_after_m_slots_without_sep():
    passage = [1, 2, 3, 4]
    ans = constrained_decode(_probs([{1: 0.9}, {2: 0.9}, {3: 0.9}]), passage, END)
    assert ans.tokens == [1, 2, 3] and len(ans.probs) == 3


def test_the_start_points_at_the_first_occurrence_of_the_chosen_run():
    passage = [3, 4, 1, 2, 9, 1, 2, 5]
    ans = constrained_decode(_probs([{1: 0.9}, {2: 0.9}, {5: 0.8, END: 0.1}, {END: 0.9}]), passage, END)
    assert ans.tokens == [1, 2, 5] and ans.start == 5
    assert passage[ans.start : ans.start + 3] == ans.tokens


def _brute_force(probs: torch.Tensor, passage: list[int], end: int) -> list[int]:
    """Greedy under the rule, by checking every vocab token with a naive substring test."""

    def is_ngram(seq):
        return any(passage[i : i + len(seq)] == seq for i in range(len(passage) - len(seq) + 1))

    prefix: list[int] = []
    for k in range(probs.size(0)):
        best, best_p = None, -1.0
        for v in range(probs.size(1)):
            if (v == end or is_ngram(prefix + [v])) and float(probs[k, v]) > best_p:
                best, best_p = v, float(probs[k, v])
        if best == end:
            break
        prefix.append(best)
    return prefix


def test_constrained_decoding_matches_brute_force_on_a_tiny_vocab():
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        vocab, m = 6, rng.randint(1, 5)
        passage = [rng.randint(1, vocab - 1) for _ in range(rng.randint(0, 9))]
        probs = torch.rand((m, vocab), generator=gen).softmax(-1)
        got = constrained_decode(probs, passage, END)
        assert got.tokens == _brute_force(probs, passage, END), (passage, probs)
        assert got.start == find_run(passage, got.tokens)


def test_decode_batch_rows_are_independent():
    probs = torch.stack([_probs([{5: 0.9}, {END: 0.9}]), _probs([{6: 0.9}, {END: 0.9}])])
    out = decode_batch(probs, [[5, 6], [6, 5]], END)
    assert [a.tokens for a in out] == [[5], [6]]
    out = decode_batch(probs, [[7], [7]], END, constrained=False)
    assert [a.tokens for a in out] == [[5], [6]] and [a.start for a in out] == [-1, -1]


def test_prefix_constraint_rejects_a_token_that_breaks_the_ngram():
    state = PrefixConstraint([1, 2, 3], END)
    assert state.allowed() == [END, 1, 2, 3]
    state.push(2)
    assert state.allowed() == [END, 3]
    with pytest.raises(ValueError):
        state.push(1)


def test_vote_formula_hand_computed():
    cands = [("甲", 0.9), ("乙", 0.8), ("甲", 0.3), ("", 0.99), ((), 0.99)]
    votes = vote(cands)
    assert set(votes) == {"甲", "乙"}  # empty answers do not vote
    assert votes["甲"] == pytest.approx((0.81 + 0.09) / (1.2 + 1))
    assert votes["乙"] == pytest.approx(0.64 / 1.8)
    assert best_answer(cands) == ("甲", pytest.approx(0.9 / 2.2))
    # one confident passage beats two weak ones: 0.81/1.9 > 0.32/1.8
    assert best_answer([("a", 0.9), ("b", 0.4), ("b", 0.4)])[0] == "a"
    # ...but many agreeing passages beat one: 5 * 0.36 / 4 = 0.45 > 0.81 / 1.9
    assert best_answer([("a", 0.9)] + [("b", 0.6)] * 5)[0] == "b"


def test_no_answer_when_every_passage_is_empty():
    assert best_answer([((), 0.9), ((), 0.5)]) == (None, 0.0)
    assert best_answer([]) == (None, 0.0)
