"""Post 6's joint seq2seq decoder (bertlab.decoding.joint) against hand computations, with the
model replaced by a stub that returns fixed next-token probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from bertlab.decoding.joint import combine, joint_decode, joint_step
from bertlab.decoding.substring import PassageNgrams

END = 5  # vocab 0..5, 5 = [SEP]
PASSAGES = [[1, 2, 3], [2, 4], [3, 1]]
# step 0, one row per passage (one empty prefix)
STEP0 = [
    [0.0, 0.5, 0.2, 0.1, 0.1, 0.1],  # passage 0: argmax 1 -> live
    [0.0, 0.1, 0.3, 0.0, 0.2, 0.4],  # passage 1: argmax [SEP] -> "no answer", dropped
    [0.0, 0.1, 0.1, 0.6, 0.1, 0.1],  # passage 2: argmax 3 -> live
]
# step 1 (prefix [3]), live passages 0 and 2
STEP1 = [
    [0.0, 0.1, 0.1, 0.1, 0.6, 0.1],  # passage 0 likes 4, which continues no live passage's [3]
    [0.0, 0.2, 0.1, 0.1, 0.1, 0.5],
]


class Stub:
    """next_probs with fixed tables; records what the decoder asked for."""

    def __init__(self, tables):
        self.tables, self.calls = tables, []

    def __call__(self, live, prefixes, parents):
        self.calls.append((list(live), [list(p) for p in prefixes], parents))
        t = torch.tensor(self.tables[len(self.calls) - 1])
        return t.view(len(live), len(prefixes), -1)


def test_combination_is_sum_of_squares_over_sum_plus_one():
    p = torch.tensor([[0.5, 0.2], [0.1, 0.6]])
    assert combine(p).tolist() == pytest.approx([(0.25 + 0.01) / 1.6, (0.04 + 0.36) / 1.8])


def test_one_step_by_hand_extractive_mask_and_combination():
    """Step 0 of the table above with passages 0 and 2 live: prefix () may start with any token of
    a live passage (1, 2, 3) or end; token 4 (only in the dropped passage) and 0 get 0."""
    live = torch.tensor([STEP0[0], STEP0[2]])[:, None]  # shape: [J=2, B=1, V]
    ngrams = [PassageNgrams(PASSAGES[0], END), PassageNgrams(PASSAGES[2], END)]
    got = joint_step(live, [[]], ngrams)[0].exp() - 1e-6
    hand = [0.0, (0.25 + 0.01) / 1.6, (0.04 + 0.01) / 1.3, (0.01 + 0.36) / 1.7, 0.0, (0.01 + 0.01) / 1.2]
    assert got.tolist() == pytest.approx(hand, abs=1e-7)
    # without the mask token 4 keeps its combined probability
    free = joint_step(live, [[]], None)[0].exp() - 1e-6
    assert free[4].item() == pytest.approx((0.01 + 0.01) / 1.2, abs=1e-7)


def test_joint_decode_drops_no_answer_passages_and_follows_the_combined_argmax():
    stub = Stub([STEP0, STEP1])
    got = joint_decode(stub, PASSAGES, END, max_len=8)
    # step 0 asked all passages; step 1 only the live ones (0 and 2), prefix [3] from beam row 0
    assert stub.calls == [([0, 1, 2], [[]], None), ([0, 2], [[3]], [0])]
    # step 0 picks 3 (passage 2's choice: combined 0.2176 > 0.1625 for passage 0's 1); step 1:
    # after [3] only 1 (passage 2) and [SEP] are allowed, 4 is masked: [SEP] 0.1625 > 0.0385
    assert got.tokens == [3] and got.live == [0, 2] and got.steps == 2
    assert got.score == pytest.approx(math.log(0.37 / 1.7 + 1e-6) + math.log(0.26 / 1.6 + 1e-6))


def test_all_passages_saying_no_answer_give_the_empty_answer():
    table = [[0.0, 0.1, 0.1, 0.1, 0.1, 0.6]] * 3
    stub = Stub([table])
    got = joint_decode(stub, PASSAGES, END, max_len=8)
    assert got.tokens == [] and got.live == [] and len(stub.calls) == 1


def test_beam_of_two_drops_finished_prefixes_and_shrinks():
    """topk=2: step 0 keeps 3 and 1 (both beams); at step 1 the best is an open prefix, the
    finished one ([3, SEP]) is dropped and the beam shrinks to 1; the parents index the beams."""
    step1 = [  # rows: live passage x beam ([3], [1]) for passages 0 and 2
        [0.0, 0.1, 0.1, 0.1, 0.6, 0.1],
        [0.0, 0.1, 0.8, 0.0, 0.0, 0.1],
        [0.0, 0.2, 0.1, 0.1, 0.1, 0.5],
        [0.0, 0.1, 0.7, 0.0, 0.0, 0.2],
    ]
    step2 = [[0.0, 0.1, 0.1, 0.1, 0.1, 0.6], [0.0, 0.1, 0.1, 0.1, 0.1, 0.6]]
    stub = Stub([STEP0, step1, step2])
    got = joint_decode(stub, PASSAGES, END, max_len=8, topk=2)
    assert stub.calls[1] == ([0, 2], [[3], [1]], [0, 0])
    # [1, 2] (0.1625 x 0.452) beats the finished [3, SEP] (0.2176 x 0.1625): both kept, the best is open
    s12 = math.log(0.26 / 1.6 + 1e-6) + math.log(1.13 / 2.5 + 1e-6)
    s3e = math.log(0.37 / 1.7 + 1e-6) + math.log(0.26 / 1.6 + 1e-6)
    assert s12 > s3e
    assert stub.calls[2] == ([0, 2], [[1, 2]], [1])  # only the open beam, from parent row 1
    assert got.tokens == [1, 2] and got.score == pytest.approx(s12 + math.log(0.72 / 2.2 + 1e-6))
