"""Segmentation scores against hand-computed numbers."""

from __future__ import annotations

import pytest

from bertlab.metrics.segmentation import segmentation_scores, word_spans


def test_word_spans():
    assert word_spans(["我", "爱", "北京", "天安门"]) == [(0, 1), (1, 2), (2, 4), (4, 7)]
    assert word_spans([]) == []


def test_hand_computed_example():
    # gold spans: 我[0,1) 爱[1,2) 北京[2,4) 天安门[4,7)        -> 4 words
    # pred spans: 我爱[0,2) 北京[2,4) 天[4,5) 安门[5,7)        -> 4 words
    # correct: only 北京 [2,4)                                  -> 1
    gold = [["我", "爱", "北京", "天安门"]]
    pred = [["我爱", "北京", "天", "安门"]]
    s = segmentation_scores(pred, gold, train_words={"我", "爱", "北京"})
    assert (s["n_pred"], s["n_gold"], s["n_correct"]) == (4, 4, 1)
    assert s["precision"] == pytest.approx(1 / 4)
    assert s["recall"] == pytest.approx(1 / 4)
    assert s["f1"] == pytest.approx(1 / 4)  # 2 * .25 * .25 / .5
    # OOV gold words: 天安门 only (not in the list); it is wrong -> OOV recall 0/1
    assert (s["n_oov"], s["n_oov_correct"]) == (1, 0)
    assert s["oov_recall"] == 0.0
    assert s["oov_rate"] == pytest.approx(1 / 4)
    # IV gold words: 我 爱 北京; only 北京 correct -> 1/3
    assert (s["n_iv"], s["n_iv_correct"]) == (3, 1)
    assert s["iv_recall"] == pytest.approx(1 / 3)


def test_unequal_counts_two_sentences():
    # sentence 1: gold 他 来到 了 网易 杭研 大厦 (6 words)
    #             pred 他 来到 了 网易 杭 研 大厦 (7 words): correct 他 来到 了 网易 大厦 = 5
    # sentence 2: gold 小明 硕士 毕业 (3 words), pred 小明硕士 毕业 (2 words): correct 毕业 = 1
    gold = [["他", "来到", "了", "网易", "杭研", "大厦"], ["小明", "硕士", "毕业"]]
    pred = [["他", "来到", "了", "网易", "杭", "研", "大厦"], ["小明硕士", "毕业"]]
    words = {"他", "来到", "了", "网易", "大厦", "硕士", "毕业"}  # OOV: 杭研, 小明
    s = segmentation_scores(pred, gold, words)
    assert (s["n_pred"], s["n_gold"], s["n_correct"]) == (9, 9, 6)
    assert s["precision"] == pytest.approx(6 / 9)
    assert s["recall"] == pytest.approx(6 / 9)
    assert s["f1"] == pytest.approx(6 / 9)
    assert (s["n_oov"], s["n_oov_correct"], s["oov_recall"]) == (2, 0, 0.0)
    assert (s["n_iv"], s["n_iv_correct"]) == (7, 6)
    assert s["iv_recall"] == pytest.approx(6 / 7)


def test_precision_differs_from_recall():
    # gold 中华人民共和国 成立 (2 words); pred 中华 人民 共和国 成立 (4 words); correct: 成立
    s = segmentation_scores([["中华", "人民", "共和国", "成立"]], [["中华人民共和国", "成立"]])
    assert s["precision"] == pytest.approx(1 / 4)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)  # = 1/3
    assert s["oov_recall"] is None and s["iv_recall"] is None and s["n_oov"] is None


def test_perfect_and_empty_sentences():
    gold = [["a", "bc"], [], ["d"]]
    s = segmentation_scores([list(x) for x in gold], gold, {"a", "bc", "d"})
    assert s["precision"] == s["recall"] == s["f1"] == 1.0
    assert s["n_sentences"] == 3
    assert s["oov_recall"] is None  # no OOV word in the gold
    assert s["iv_recall"] == 1.0


def test_all_wrong_gives_zero_f1():
    s = segmentation_scores([["ab"]], [["a", "b"]])
    assert s["n_correct"] == 0
    assert s["precision"] == s["recall"] == s["f1"] == 0.0


def test_mismatched_text_names_sentence():
    with pytest.raises(ValueError, match="sentence index 1"):
        segmentation_scores([["我"], ["爱", "你"]], [["我"], ["爱", "他"]])


def test_mismatched_sentence_count():
    with pytest.raises(ValueError, match="1 predicted sentences but 2 gold"):
        segmentation_scores([["我"]], [["我"], ["你"]])


def test_empty_word_rejected():
    with pytest.raises(ValueError, match="sentence index 0: an empty predicted word"):
        segmentation_scores([["我", ""]], [["我"]])
