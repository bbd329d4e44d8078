"""The Sogou-tool metric against hand-computed values."""

from __future__ import annotations

import pytest

from bertlab.metrics.reading_comprehension import (
    char_f1,
    full_to_half,
    normalize_answer,
    reading_comprehension_scores,
    score_answer,
)


def test_full_to_half_width():
    assert full_to_half("１９４９年ＡＢＣ！\u3000ｘ") == "1949年ABC! x"
    assert full_to_half("北京") == "北京"


def test_normalisation_case_punctuation_spaces():
    assert normalize_answer("  Ｈｅｌｌｏ， World！") == "helloworld"
    assert normalize_answer("《红楼梦》、“曹雪芹”。") == "红楼梦曹雪芹"
    assert normalize_answer("１９４９年") == normalize_answer("1949 年") == "1949年"
    assert normalize_answer("a-b_c(d)") == "abcd"


def test_char_f1_hand_computed():
    # 北京市 vs 北京: 2 common chars, P = 2/3, R = 1, F1 = 2 * (2/3) / (5/3) = 0.8
    assert char_f1("北京市", "北京") == pytest.approx(0.8)
    # multiset overlap: 哈哈哈 vs 哈哈 -> common 2, P 2/3, R 1
    assert char_f1("哈哈哈", "哈哈") == pytest.approx(0.8)
    assert char_f1("abc", "xyz") == 0.0
    assert char_f1("", "abc") == 0.0 and char_f1("", "") == 1.0


def test_score_answer_takes_the_best_gold_answer():
    acc, f1 = score_answer("北京市", ["上海", "北京"])
    assert acc == 0.0 and f1 == pytest.approx(0.8)
    acc, f1 = score_answer("ＢＥＩＪＩＮＧ。", ["Beijing", "北京"])
    assert (acc, f1) == (1.0, 1.0)
    assert score_answer("", ["北京"]) == (0.0, 0.0)
    assert score_answer("", []) == (1.0, 1.0)  # a no-answer question answered "no answer"
    assert score_answer("北京", []) == (0.0, 0.0)


def test_corpus_scores_and_final():
    preds = ["１９４９年", "北京市", "上海"]
    golds = [["1949年"], ["北京"], ["广州", "深圳"]]
    m = reading_comprehension_scores(preds, golds)
    # Acc: 1, 0, 0 -> 1/3; F1: 1, 0.8, 0 -> 0.6; Final = (1/3 + 0.6) / 2
    assert m["acc"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(0.6)
    assert m["final"] == pytest.approx((1 / 3 + 0.6) / 2)
    assert m["n_questions"] == 3
    with pytest.raises(ValueError):
        reading_comprehension_scores(["a"], [])
