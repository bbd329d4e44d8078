"""Triple P/R/F1 on hand-computed cases, normalisation, the dictionary baseline."""

import pytest

from bertlab.metrics.triples import dictionary_baseline, normalize, triple_diff, triple_scores


def test_hand_computed_scores():
    gold = [
        [("周杰伦", "歌手", "七里香"), ("七里香", "作词", "方文山")],
        [("A", "p", "B")],
        [],
    ]
    pred = [
        [("周杰伦", "歌手", "七里香"), ("七里香", "作曲", "方文山")],  # 1 right, 1 wrong predicate
        [],  # 1 missed
        [("x", "p", "y")],  # 1 spurious
    ]
    m = triple_scores(pred, gold)
    # X = 1, Y = 3, Z = 3
    assert (m["n_correct"], m["n_pred"], m["n_gold"]) == (1, 3, 3)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * 1 / 6)


def test_unequal_denominators_and_duplicates_count_once():
    gold = [[("s", "p", "o1"), ("s", "p", "o2"), ("s", "q", "o1"), ("t", "p", "o1")]]
    pred = [[("s", "p", "o1"), ("s", "p", "o1"), ("s", "q", "o1")]]  # a duplicate prediction
    m = triple_scores(pred, gold)
    assert (m["n_correct"], m["n_pred"], m["n_gold"]) == (2, 2, 4)
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 * 2 / 6)


def test_case_and_space_tolerant_but_predicate_exact():
    gold = [[("Apple Inc", "p", "Tim  Cook")]]
    assert triple_scores([[("apple inc", "p", "TimCook")]], gold)["f1"] == 1.0
    assert triple_scores([[("Apple Inc", "P", "Tim Cook")]], gold)["f1"] == 0.0
    assert normalize(" Café\tNoir ") == "cafenoir"
    assert normalize("ＡＢ") == "ａｂ"  # no width folding: the post's tokenizer does none


def test_empty_everything_is_zero_not_a_crash():
    assert triple_scores([[]], [[]])["f1"] == 0.0
    with pytest.raises(ValueError):
        triple_scores([[]], [])


def test_dictionary_baseline():
    train = [[("周杰伦", "歌手", "七里香"), ("刘德华", "主演", "无间道")]]
    texts = ["《七里香》是周杰伦的歌", "刘德华很帅", "无间道由刘德华主演"]
    got = dictionary_baseline(train, texts)
    assert got == [[("周杰伦", "歌手", "七里香")], [], [("刘德华", "主演", "无间道")]]


def test_triple_diff_compares_in_normalized_form():
    def t(s, p, o):
        return {"subject": s, "predicate": p, "object": o, "subject_span": [0, 1], "object_span": [2, 3]}

    pred = [t("Jay Chou", "歌手", "七里香"), t("刘德华", "主演", "无间道"), t("刘德华", "主演", "无间道")]
    gold = [("jaychou", "歌手", "七里香"), ("周杰伦", "作曲", "七里香")]
    assert triple_diff(pred, gold) == {"new": [pred[2]], "lack": [["周杰伦", "作曲", "七里香"]]}
    assert triple_diff([], []) == {"new": [], "lack": []}
