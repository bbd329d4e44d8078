"""The two official MRC tools, rule by rule, on hand-made cases.

Each expected value is worked out by hand from the tool's code; the comment names the rule.
Sogou = evaluate_tool/evaluate.py + string_tool.py + punctuation (bojone/dgcnn_for_reading_comprehension);
CMRC = cmrc2018_evaluate.py (ymcui/cmrc2018).
"""

from __future__ import annotations

import json
import lzma
import random
import re
from pathlib import Path

import pytest
from nltk.tokenize import word_tokenize

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


def test_cmrc_words_are_nltk_word_tokenize():
    # non-CJK runs go through nltk.word_tokenize (Treebank rules): a symbol next to a digit or letter
    # that the rules do not name stays inside the word
    assert cmrc_segment("零下25°C") == ["零", "下", "25°c"]  # ° is no Treebank punctuation
    assert cmrc_segment("±6000米") == ["±6000", "米"]
    assert cmrc_segment("０．３７秒") == ["０．３７", "秒"]  # full-width digits and ．: one word
    assert cmrc_segment("3.5kg重") == ["3.5kg", "重"]
    # [;@#$%&] are split off; "don't" is split as a contraction; a double quote becomes `` / ''
    assert cmrc_segment("50%的$100") == ["50", "%", "的", "$", "100"]
    assert cmrc_segment("Don't说") == ["do", "n't", "说"]
    assert cmrc_segment('"ABC"说') == ["``", "abc", "''", "说"]
    # the script's symbols are dropped before the run is tokenised: e=mc^2 -> "emc2", one word
    assert cmrc_segment("e=mc^2") == ["emc2"]
    # mixed Latin/CJK: every CJK char splits the run
    assert cmrc_segment("NBA总决赛MVP詹姆斯") == ["nba", "总", "决", "赛", "mvp", "詹", "姆", "斯"]
    # the Punkt sentence split is not applied (module docstring): a mid-run "word." stays one token
    assert cmrc_segment("hello. world") == ["hello.", "world"]


def test_cmrc_f1_on_symbols_next_to_letters_and_digits():
    # 25°C vs 25℃: tokens [25°c] vs [25℃], nothing in common -> F1 0 (a regex split gave 25,°,c vs 25,℃: 0.4)
    assert cmrc2018_score("25°C", ["25℃"]) == (0.0, 0.0)
    # ±6000米 vs 6000米: [±6000, 米] vs [6000, 米] -> lcs 1 (米), P 1/2, R 1/2 -> F1 0.5 (regex: 0.8)
    assert cmrc2018_score("±6000米", ["6000米"]) == (0.0, pytest.approx(0.5))
    # ０．３７秒 vs ０．３７: [０．３７, 秒] vs [０．３７] -> lcs 1, P 1/2, R 1 -> F1 2/3 (regex: 6/7)
    assert cmrc2018_score("０．３７秒", ["０．３７"]) == (0.0, pytest.approx(2 / 3))
    # don't vs do: [do, n't] vs [do] -> lcs 1, P 1/2, R 1 -> 2/3 (regex: [don't] vs [do] -> 0)
    assert cmrc2018_score("don't", ["do"]) == (0.0, pytest.approx(2 / 3))
    # EM keeps °/± (not in the symbol list) but drops the list's ones: "25°c" == "25°c"
    assert cmrc2018_score("25°C", ["25°c"]) == (1.0, 1.0)
    assert cmrc2018_score("e=mc^2", ["EMC2"]) == (1.0, 1.0)


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


# ------------------------------------------------------------------------------------- the script, restated

#: the script's sp_char list, one entry a string as it writes them ("……" is one two-character entry)
_SP_CHAR = ["-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“", "”", "；"]
_SP_CHAR += ["’", "《", "》", "……", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"]


def _script_segmentation(text: str) -> list[str]:
    """The script's mixed_segmentation(text, rm_punc=True), restated step by step."""
    text = str(text).lower().strip()
    out, pending = [], ""
    for char in text:
        if char in _SP_CHAR:
            continue
        if re.search("[\u4e00-\u9fa5]", char):
            out += word_tokenize(pending, preserve_line=True) if pending else []
            out.append(char)
            pending = ""
        else:
            pending += char
    return out + (word_tokenize(pending, preserve_line=True) if pending else [])


def _script_lcs_len(s1: list[str], s2: list[str]) -> int:
    table = [[0] * (len(s2) + 1) for _ in range(len(s1) + 1)]
    for i in range(len(s1)):
        for j in range(len(s2)):
            if s1[i] == s2[j]:
                table[i + 1][j + 1] = table[i][j] + 1
    return max(max(row) for row in table)


def _script_scores(answers: list[str], prediction: str) -> tuple[float, float]:
    """calc_em_score and calc_f1_score of the script, restated."""
    strip = lambda t: "".join(c for c in str(t).lower().strip() if c not in _SP_CHAR)  # noqa: E731
    em = float(any(strip(a) == strip(prediction) for a in answers))
    f1s = []
    for a in answers:
        a_segs, p_segs = _script_segmentation(a), _script_segmentation(prediction)
        n = _script_lcs_len(a_segs, p_segs)
        f1s.append(0.0 if n == 0 else 2 * (n / len(p_segs)) * (n / len(a_segs)) / (n / len(p_segs) + n / len(a_segs)))
    return em, max(f1s)


_NOISE = (
    list("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
    + list(" .,;%$&@#?!'\"()°±×·…０１．ＡＢ")
    + ["A", "b", "7", "年", "国"]
)


def _perturb(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        if op < 0.45:
            chars.insert(rng.randint(0, len(chars)), rng.choice(_NOISE))
        elif op < 0.7 and chars:
            del chars[rng.randrange(len(chars))]
        elif chars:
            i = rng.randrange(len(chars))
            chars[i] = chars[i].upper() if rng.random() < 0.5 else rng.choice(_NOISE)
    out = "".join(chars)
    if rng.random() < 0.3 and out:  # a shifted span
        i, j = sorted(rng.sample(range(len(out) + 1), 2))
        out = out[i:j]
    return out


def test_cmrc_score_equals_the_script_restated_on_perturbed_shipped_answers():
    path = Path(__file__).resolve().parents[2] / "data" / "mrc" / "cmrc2018" / "cmrc2018_dev.json.xz"
    with lzma.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    golds = [[a["text"] for a in qa["answers"]] for art in data["data"] for p in art["paragraphs"] for qa in p["qas"]]
    rng = random.Random(0)
    for answers in rng.sample(golds, 400):
        pred = _perturb(rng, rng.choice(answers))
        em, f1 = cmrc2018_score(pred, answers)
        s_em, s_f1 = _script_scores(answers, pred)
        assert em == s_em and f1 == pytest.approx(s_f1, abs=1e-12), (pred, answers)
