"""The two official MRC tools, rule by rule, on hand-made cases.

Each expected value is worked out by hand from the tool's code; the comment names the rule.
Sogou = evaluate_tool/evaluate.py + string_tool.py + punctuation (bojone/dgcnn_for_reading_comprehension);
CMRC = cmrc2018_evaluate.py (ymcui/cmrc2018).
"""

from __future__ import annotations

import pytest

from bertlab.metrics.reading_comprehension import (
    char_f1,
    cmrc2018_score,
    cmrc_answer,
    cmrc_segment,
    full_to_half,
    longest_common_substring_len,
    normalize_answer,
    reading_comprehension_scores,
    score_answer,
    sogou_score,
)

# ------------------------------------------------------------------------------------- Sogou


def test_full_to_half_width():
    # strQ2B: U+3000 -> 32, U+FF01..U+FF5E -> -65248
    assert full_to_half("１９４９年ＡＢＣ！\u3000ｘ") == "1949年ABC! x"
    assert full_to_half("北京") == "北京"


def test_sogou_format_string():
    # strQ2B, lower, drop_punctuation (its list), filter_blank (ASCII \s of a byte string)
    assert normalize_answer("  Ｈｅｌｌｏ， World！") == "helloworld"
    assert normalize_answer("《红楼梦》、“曹雪芹”。") == "红楼梦曹雪芹"
    assert normalize_answer("１９４９年") == normalize_answer("1949 年") == "1949年"
    assert normalize_answer("a-b_c(d)") == "abcd"


def test_sogou_punctuation_is_its_own_list():
    # in the list: ° × ± ÷ ￥ ← ≤ ★ 々 are removed -> exact match
    for ch in "°×±÷￥←≤★々":
        assert sogou_score(f"37{ch}5", ["375"]) == (1.0, 1.0), ch
    # NOT in the list: – (en dash) 〜 (wave dash) « are kept. "1–2" vs "12": formatted "1–2" != "12"
    # -> Acc 0; F1: tokens 1,–,2 vs 1,2 -> right 2, P 2/3, R 1, F1 0.8
    for ch in "–〜«":
        acc, f1 = sogou_score(f"1{ch}2", ["12"])
        assert acc == 0.0 and f1 == pytest.approx(0.8), ch
    # Unicode punctuation outside the list (¿ is category Po) is also kept
    assert sogou_score("¿北京", ["北京"])[0] == 0.0


def test_sogou_lower_case_is_ascii_only():
    # str.lower() on a Python 2 byte string changes A-Z only: Ａ (full width) becomes A then a;
    # É is unchanged -> "École" != "école" (Acc 0); F1: é vs É differ, 4 of 5 chars -> 0.8
    assert sogou_score("ＡＢＣ", ["abc"]) == (1.0, 1.0)
    acc, f1 = sogou_score("École", ["école"])
    assert acc == 0.0 and f1 == pytest.approx(0.8)


def test_sogou_whitespace_removed_and_empty_prediction():
    # filter_blank removes ASCII whitespace inside; the stripped empty prediction scores 0/0
    assert sogou_score("北 京\t市", ["北京市"]) == (1.0, 1.0)
    assert sogou_score("", ["北京"]) == (0.0, 0.0)
    assert sogou_score("  \t", ["北京"]) == (0.0, 0.0)
    # only punctuation: non-empty before formatting, "" after -> no exact match, no token -> 0/0
    assert sogou_score("。。", ["北京"]) == (0.0, 0.0)


def test_sogou_set_of_parts_match():
    # is_exact_match_answer: set(parts of the prediction) == set(parts of the STANDARD answer)
    assert sogou_score("上海 北京", ["北京 上海"]) == (1.0, 1.0)
    # punctuation (here ， and 、 of the list) becomes a space before the split
    assert sogou_score("上海，北京", ["北京、上海"])[0] == 1.0
    # no separator: formatted "上海北京" != "北京上海" and one part each -> Acc 0, F1 1 (same chars)
    assert sogou_score("上海北京", ["北京 上海"]) == (0.0, 1.0)
    # split(" ") on two spaces yields an empty part: {上海, "", 北京} != {北京, 上海} -> Acc 0
    assert sogou_score("上海  北京", ["北京 上海"]) == (0.0, 1.0)
    # a tab is not a split point of split(" "): one part "上海北京" -> Acc 0
    assert sogou_score("上海\t北京", ["北京 上海"])[0] == 0.0
    # the set rule uses the standard answer (golds[0]) only, not the expanded answers
    assert sogou_score("上海 北京", ["天津", "北京 上海"])[0] == 0.0


def test_sogou_char_f1_hand_computed():
    # cacu_character_level_f: greedy multiset match, max over the expanded answers
    assert char_f1("北京市", "北京") == pytest.approx(0.8)  # 2 common, P 2/3, R 1
    assert char_f1("哈哈哈", "哈哈") == pytest.approx(0.8)  # multiset: 2 common
    assert char_f1("abc", "xyz") == 0.0
    assert char_f1("", "abc") == 0.0 and char_f1("", "") == 0.0  # right_count 0 -> skipped
    acc, f1 = sogou_score("北京市", ["上海", "北京"])
    assert acc == 0.0 and f1 == pytest.approx(0.8)
    assert sogou_score("ＢＥＩＪＩＮＧ。", ["Beijing", "北京"]) == (1.0, 1.0)


def test_sogou_needs_a_gold_answer_and_no_answer_rule_stays_outside():
    with pytest.raises(ValueError):
        sogou_score("北京", [])
    assert score_answer("", []) == (1.0, 1.0)  # bertlab's no-answer rule
    assert score_answer("北京", []) == (0.0, 0.0)
    assert score_answer("北京", ["北京"]) == sogou_score("北京", ["北京"])


# ------------------------------------------------------------------------------------- CMRC 2018


def test_cmrc_mixed_segmentation():
    # each CJK char a token; other runs word-tokenised; lower-cased; rm_punc drops the symbol list
    assert cmrc_segment("2018年NBA总决赛") == ["2018", "年", "nba", "总", "决", "赛"]
    assert cmrc_segment("iPhone 6s 发布") == ["iphone", "6s", "发", "布"]
    # a dropped symbol does not end a run: "ab-cd" is one word
    assert cmrc_segment("ab-cd") == ["abcd"]
    # symbols of the list are dropped, others (ASCII , . ! and …) kept as tokens
    assert cmrc_segment("《红楼梦》，") == ["红", "楼", "梦"]
    assert cmrc_segment("好!") == ["好", "!"]
    assert cmrc_segment("3.5") == ["3.5"]


def test_cmrc_f1_is_longest_common_substring_not_bag():
    assert longest_common_substring_len(list("abcxbc"), list("bcab")) == 2
    # "北京上海" vs "上海北京": bag overlap 4/4 (F1 1) but the longest common substring is 2 tokens
    # -> P = R = 0.5, F1 0.5; EM 0
    em, f1 = cmrc2018_score("上海北京", ["北京上海"])
    assert em == 0.0 and f1 == pytest.approx(0.5)
    # "中华人民共和国" vs "人民共和国成立": lcs "人民共和国" = 5, P 5/7, R 5/7 -> F1 5/7
    assert cmrc2018_score("中华人民共和国", ["人民共和国成立"])[1] == pytest.approx(5 / 7)


def test_cmrc_em_removes_its_symbols_only():
    # remove_punctuation: 。《》 are in the list -> EM 1
    assert cmrc2018_score("《红楼梦》。", ["红楼梦"]) == (1.0, 1.0)
    # ASCII "." is not in the list -> EM 0; F1: tokens 红 楼 梦 . vs 红 楼 梦 -> P 3/4, R 1 -> 6/7
    em, f1 = cmrc2018_score("红楼梦.", ["红楼梦"])
    assert em == 0.0 and f1 == pytest.approx(6 / 7)
    # inner spaces are kept by remove_punctuation -> "北 京" != "北京" (EM 0) but F1 1 (same tokens)
    assert cmrc2018_score("北 京", ["北京"]) == (0.0, 1.0)
    # lower + strip
    assert cmrc2018_score("  NBA ", ["nba"]) == (1.0, 1.0)


def test_cmrc_max_over_golds_and_empty_prediction():
    em, f1 = cmrc2018_score("北京市", ["上海", "北京"])
    assert em == 0.0 and f1 == pytest.approx(0.8)  # lcs 2: P 2/3, R 1
    assert cmrc2018_score("北京", ["上海", "北京"]) == (1.0, 1.0)
    assert cmrc2018_score("", ["北京"]) == (0.0, 0.0)  # lcs 0 -> F1 0; "" != "北京"
    with pytest.raises(ValueError):
        cmrc2018_score("北京", [])
    assert cmrc_answer("", []) == (1.0, 1.0)


def test_the_tools_differ_where_their_rules_differ():
    # Sogou compares character bags, CMRC the longest common token run
    assert sogou_score("上海北京", ["北京上海"]) == (0.0, 1.0)
    assert cmrc2018_score("上海北京", ["北京上海"]) == (0.0, 0.5)
    # Sogou drops ASCII "." (its list), CMRC keeps it
    assert sogou_score("红楼梦.", ["红楼梦"]) == (1.0, 1.0)
    assert cmrc2018_score("红楼梦.", ["红楼梦"])[0] == 0.0


# ------------------------------------------------------------------------------------- corpus means


def test_corpus_scores_report_both_tools():
    preds = ["１９４９年", "北京市", "上海", ""]
    golds = [["1949年"], ["北京"], ["广州", "深圳"], []]
    m = reading_comprehension_scores(preds, golds)
    # Sogou Acc: 1, 0, 0, 1 (no-answer rule) -> 0.5; F1: 1, 0.8, 0, 1 -> 0.7
    assert m["acc"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.7)
    assert m["final"] == pytest.approx(0.6)
    # CMRC: "１９４９年" lower/strip keeps full-width digits -> tokens "１９４９","年" vs "1949","年":
    # EM 0, lcs 1 -> F1 0.5; 北京市: EM 0, F1 0.8; 上海: 0/0; no-answer: 1/1
    assert m["cmrc_em"] == pytest.approx(0.25)
    assert m["cmrc_f1"] == pytest.approx((0.5 + 0.8 + 0 + 1) / 4)
    assert m["cmrc_average"] == pytest.approx((m["cmrc_em"] + m["cmrc_f1"]) / 2)
    assert m["n_questions"] == 4
    with pytest.raises(ValueError):
        reading_comprehension_scores(["a"], [])
