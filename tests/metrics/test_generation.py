"""Generation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from bertlab.metrics.generation import PerplexityMeter, control_accuracy, copy_rate, distinct_n, ngrams, perplexity


def test_distinct_n_by_hand():
    samples = ["好好好", "好的"]
    # unigrams: 好 好 好 好 的 -> 2 distinct of 5; bigrams: 好好 好好 好的 -> 2 of 3 (none across samples)
    assert distinct_n(samples, 1) == pytest.approx(2 / 5)
    assert distinct_n(samples, 2) == pytest.approx(2 / 3)
    assert distinct_n(["ab", "ba"], 2) == 1.0
    assert distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a", ""], 2) == 0.0
    assert ngrams("abc", 2) == [("a", "b"), ("b", "c")]
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_perplexity_by_hand():
    # a uniform model over 4 tokens: ppl 4
    assert perplexity(3 * math.log(4), 3) == pytest.approx(4.0)
    assert math.isnan(perplexity(0.0, 0))
    meter = PerplexityMeter()
    meter.update(0, math.log(2) * 2, 2)
    meter.update(1, math.log(8), 1)
    meter.update(0, math.log(2), 1)
    out = meter.compute()
    assert out[0] == pytest.approx(2.0) and out[1] == pytest.approx(8.0)
    assert out["all"] == pytest.approx(math.exp((3 * math.log(2) + math.log(8)) / 4))  # = 4


def test_control_accuracy_with_a_stand_in_classifier():
    def says_positive_if_good(texts):
        return [1 if "好" in t else 0 for t in texts]

    texts = ["很好", "不好", "太差", "差", "好"]
    targets = [1, 0, 0, 1, 1]
    # predicted 1 1 0 0 1 -> right, wrong, right, wrong, right
    assert control_accuracy(texts, targets, says_positive_if_good) == pytest.approx(3 / 5)
    assert math.isnan(control_accuracy([], [], says_positive_if_good))
    with pytest.raises(ValueError, match="returned 1 labels for 2 texts"):
        control_accuracy(["a", "b"], [0, 1], lambda t: [0])


def test_copy_rate():
    train = ["这家酒店的服务非常好，房间干净整洁，早餐丰富，下次还会再来入住", "差"]
    samples = [
        "我觉得这家酒店的服务非常好，房间干净整洁，早餐也不错",
        "这家酒店的服务非常好",
        "完全不同的一句话没有任何重复的内容在这里啊啊啊",
    ]
    # sample 1 shares the 20 characters "这家酒店的服务非常好，房间干净整洁，早餐"; sample 2 is only 10 long
    assert copy_rate(samples, train, min_chars=20) == pytest.approx(1 / 3)
    assert copy_rate(samples, train, min_chars=10) == pytest.approx(2 / 3)
    assert copy_rate(["这家 酒店的服务非常好"], train, min_chars=10) == 1.0  # whitespace ignored
