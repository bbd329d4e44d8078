"""CWS data: cleaning, parsing, BMES tags, splitting, the split builder, and the shipped data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bertlab.data.cws import (
    PUNCTUATION,
    TAGS,
    clean_pd_word,
    fold_width,
    load_cws_splits,
    parse_segmented_line,
    read_raw_lines,
    split_text,
    split_words,
    tags_to_words,
    words_to_tags,
    write_segmentation,
)
from bertlab.data.io import read_word_list
from bertlab.utils.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "data" / "cws"


# --------------------------------------------------------------------------- cleaning / parsing
@pytest.mark.parametrize(
    ("word", "clean"),
    [
        ("[北京", "北京"),
        ("总厂]", "总厂"),
        ("以假充真/%", "以假充真"),
        ("[中共中央]", "中共中央"),
        ("１０％", "１０％"),  # full-width percent is text
        ("１／３", "１／３"),  # full-width slash is text
        ("元／平方米", "元／平方米"),
        ("％", "％"),
        ("±％", "±％"),
        ("普通", "普通"),
    ],
)
def test_clean_pd_word(word, clean):
    assert clean_pd_word(word) == clean


def test_parse_pd_line_with_markers():
    line = "[北京 石景山 发电 总厂] 的 改革 以假充真/% ， 增长 ２０％ ， 占 １／３ 。"
    assert parse_segmented_line(line, "pd.txt", 7, clean=True) == [
        "北京", "石景山", "发电", "总厂", "的", "改革", "以假充真", "，", "增长", "２０％", "，", "占", "１／３", "。",
    ]  # fmt: skip
    # without cleaning the markers stay
    assert parse_segmented_line(line, "pd.txt", 7)[:1] == ["[北京"]


def test_parse_pku_two_space_line():
    assert parse_segmented_line("共同  创造  美好  的  新  世纪  ", "g.utf8", 1) == [
        "共同",
        "创造",
        "美好",
        "的",
        "新",
        "世纪",
    ]
    assert parse_segmented_line("", "g.utf8", 2) == []
    assert parse_segmented_line("   ", "g.utf8", 3) == []


def test_ideographic_space_is_not_a_separator():
    assert parse_segmented_line("a\u3000b c", "x", 1) == ["a\u3000b", "c"]


@pytest.mark.parametrize("bad", ["[", "]", "/%", "[/%]"])
def test_empty_word_after_cleaning_raises(bad):
    with pytest.raises(DataError) as info:
        parse_segmented_line(f"我们 {bad} 走", "pd.txt", 42, clean=True)
    assert info.value.line == 42
    assert str(info.value).startswith("pd.txt:42: word")


# --------------------------------------------------------------------------- tags
def test_tag_constants():
    assert TAGS == ("s", "b", "m", "e")


def test_words_to_tags():
    assert words_to_tags(["我", "爱", "北京", "天安门"]) == [0, 0, 1, 3, 1, 2, 3]
    assert words_to_tags([]) == []
    with pytest.raises(ValueError):
        words_to_tags(["我", ""])


def test_tags_round_trip_random():
    rng = random.Random(0)
    for _ in range(300):
        words = [
            "".join(rng.choice("甲乙丙丁，。") for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 7])))
            for _ in range(rng.randint(0, 12))
        ]
        text = "".join(words)
        assert tags_to_words(text, words_to_tags(words)) == words
    assert tags_to_words("我", [0]) == ["我"]
    assert tags_to_words("", []) == []


def test_tags_to_words_accepts_any_sequence():
    # b b m s e e: starts at 0 (b), 1 (b), 3 (s) -> 我 爱北 京天安
    assert tags_to_words("我爱北京天安", [1, 1, 2, 0, 3, 3]) == ["我", "爱北", "京天安"]
    # first tag m/e still starts a word
    assert tags_to_words("我爱", [3, 2]) == ["我爱"]
    with pytest.raises(ValueError, match="tags for a text"):
        tags_to_words("我爱", [0])
    with pytest.raises(ValueError, match="tag id 4"):
        tags_to_words("我爱", [0, 4])


# --------------------------------------------------------------------------- splitting
def test_split_text_prefers_punctuation():
    text = "今天天气很好，我们去公园。然后回家"
    assert split_text(text, 8) == ["今天天气很好，", "我们去公园。", "然后回家"]
    assert split_text("甲乙丙丁戊", 2) == ["甲乙", "丙丁", "戊"]  # hard cuts
    assert split_text("短句", 10) == ["短句"]
    assert split_text("", 5) == []
    # a closing quote is kept with its sentence; "……" is not cut in the middle
    assert split_text("他说：“好。”走吧", 7) == ["他说：“好。”", "走吧"]
    assert split_text("等等……好的", 3) == ["等等…", "…好的"]  # no cut point in the window: hard cut
    assert split_text("甲……乙丙丁", 4)[0] == "甲……"
    with pytest.raises(ValueError):
        split_text("abc", 0)


def test_split_text_invariants_random():
    rng = random.Random(1)
    alphabet = "甲乙丙丁戊" + "".join(sorted(PUNCTUATION))
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        max_len = rng.randint(1, 20)
        pieces = split_text(text, max_len)
        assert "".join(pieces) == text
        assert all(0 < len(p) <= max_len for p in pieces)


def test_split_words_prefers_punctuation_words():
    words = ["今天", "天气", "很", "好", "，", "我们", "去", "公园", "。", "然后", "回家"]
    assert split_words(words, 8) == [["今天", "天气", "很", "好", "，"], ["我们", "去", "公园", "。"], ["然后", "回家"]]
    # no punctuation: cut at the last word boundary that fits
    assert split_words(["甲乙", "丙丁", "戊"], 3) == [["甲乙"], ["丙丁", "戊"]]
    # a word longer than max_len is cut into chunks
    assert split_words(["我", "中华人民共和国", "好"], 3) == [["我"], ["中华人"], ["民共和"], ["国"], ["好"]]
    assert split_words([], 4) == []


def test_split_words_invariants_random():
    rng = random.Random(2)
    vocab = ["甲", "乙丙", "丁戊己", "庚辛壬癸", "，", "。", "、", "……"]
    for _ in range(500):
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 40))]
        max_len = rng.randint(1, 15)
        pieces = split_words(words, max_len)
        assert "".join(w for p in pieces for w in p) == "".join(words)
        assert all(p and sum(map(len, p)) <= max_len for p in pieces)
        if max_len >= 4:  # no word is longer: the words themselves are kept
            assert [w for p in pieces for w in p] == words


# --------------------------------------------------------------------------- reading / writing
def test_write_segmentation_format(tmp_path):
    out = tmp_path / "sub" / "pred.utf8"
    write_segmentation(out, [["我", "爱", "北京"], [], ["好"]])
    assert out.read_bytes() == "我  爱  北京\n\n好\n".encode()
    with pytest.raises(ValueError, match="sentence 0"):
        write_segmentation(out, [["a b"]])


def test_read_raw_lines_keeps_blank_lines(tmp_path):
    p = tmp_path / "raw.utf8"
    p.write_bytes("第一句\r\n\r\n第三句\r\n\r\n".encode())
    assert read_raw_lines(p) == ["第一句", "", "第三句", ""]


def test_fold_width():
    assert fold_width("（附图片１张）ＡＢ") == "(附图片1张)AB"


# --------------------------------------------------------------------------- split builder
def _write(path: Path, lines: list[str], crlf: bool = False) -> Path:
    end = "\r\n" if crlf else "\n"
    path.write_bytes("".join(line + end for line in lines).encode())
    return path


def test_load_cws_splits_rules(tmp_path):
    fold1 = _write(tmp_path / "cv-1.txt", [
        "[北京 石景山] 发电 总厂",     # 1 train
        "图片 新闻",                   # 2 train (its copy in fold 2 is dropped)
        "天气 预报",                   # 3 equals a test sentence -> dropped
        "",                            # 4 blank -> skipped
        "今天 晴",                     # 5 train
    ])  # fmt: skip
    fold2 = _write(tmp_path / "cv-2.txt", [
        "图片 新闻",                   # 1 duplicate of fold 1 -> dropped
        "我们 走 了",                  # 2 val (2 % 2 == 0)
        "你们 来 了",                  # 3 train
        "图片 新闻",                   # 4 duplicate of fold 1 -> dropped (not val)
        "以假充真/% 的 东西",          # 5 train
        "附 图片 １ 张",               # 6 equals test "附图片1张" after width folding -> dropped
        "我们 走 了",                  # 7 train? no: its text equals a val sentence -> dropped
        "我们 走 了",                  # 8 val again (same fold repeats are kept)
        "大家 好",                     # 9 train
        "今天 晴",                     # 10 duplicate of fold 1 -> dropped
    ])  # fmt: skip
    gold = _write(tmp_path / "gold.utf8", ["天气  预报  ", "附  图片  1  张", ""], crlf=True)

    sp = load_cws_splits([fold1, fold2], gold, val_file_index=-1, val_every=2)
    assert sp.train == [
        ["北京", "石景山", "发电", "总厂"], ["图片", "新闻"], ["今天", "晴"],
        ["你们", "来", "了"], ["以假充真", "的", "东西"], ["大家", "好"],
    ]  # fmt: skip
    assert sp.val == [["我们", "走", "了"], ["我们", "走", "了"]]
    assert sp.test == [["天气", "预报"], ["附", "图片", "1", "张"], []]
    assert sp.n_read == 14 and sp.n_blank_skipped == 1
    assert sp.dropped_duplicates == 3
    assert sp.dropped_test_overlap == 2
    assert sp.dropped_val_overlap == 1
    st = sp.stats()
    assert st["val_sentences"] == 2 and st["test_sentences"] == 2 and st["test_lines"] == 3
    assert st["train_chars"] == sum(len(w) for s in sp.train for w in s)

    # val from the first fold instead; deterministic
    sp0 = load_cws_splits([fold1, fold2], gold, val_file_index=0, val_every=2)
    assert sp0.val == [["图片", "新闻"]]
    assert ["图片", "新闻"] not in sp0.train
    assert load_cws_splits([fold1, fold2], gold, val_file_index=0, val_every=2) == sp0


def test_load_cws_splits_errors(tmp_path):
    fold = _write(tmp_path / "cv-1.txt", ["我们 走"])
    gold = _write(tmp_path / "gold.utf8", ["我们  走"])
    with pytest.raises(ValueError, match="val_file_index"):
        load_cws_splits([fold], gold, val_file_index=1)
    with pytest.raises(ValueError, match="val_every"):
        load_cws_splits([fold], gold, val_every=0)
    with pytest.raises(ValueError, match="train_files"):
        load_cws_splits([], gold)
    with pytest.raises(DataError, match="file not found"):
        load_cws_splits([tmp_path / "missing.txt"], gold)
    empty = _write(tmp_path / "empty.txt", [])
    with pytest.raises(DataError, match="holds no sentence"):
        load_cws_splits([empty], gold)
    bad = _write(tmp_path / "bad.txt", ["好 的", "我 [ 走"])
    with pytest.raises(DataError, match=r"bad\.txt:2: word '\['"):
        load_cws_splits([bad], gold)


# --------------------------------------------------------------------------- the shipped data
@pytest.fixture(scope="module")
def shipped():
    folds = [DATA / "peoples_daily_1998" / f"cv-{i}-filter_test.txt.xz" for i in range(1, 6)]
    gold = DATA / "pku_sighan2005" / "pku_test_gold.utf8.xz"
    return load_cws_splits(folds, gold)


def test_shipped_splits(shipped):
    sp = shipped
    fold5_lines = 7665
    assert 0.09 * fold5_lines < len(sp.val) <= fold5_lines // 10
    assert sp.n_read == 38329 and sp.n_blank_skipped == 0
    assert (
        len(sp.train) + len(sp.val) + sp.dropped_duplicates + sp.dropped_test_overlap + sp.dropped_val_overlap
        == sp.n_read
    )
    test_texts = {fold_width("".join(s)) for s in sp.test if s}
    assert not any(fold_width("".join(s)) in test_texts for s in sp.train)
    assert not any(fold_width("".join(s)) in test_texts for s in sp.val)
    val_texts = {"".join(s) for s in sp.val}
    assert not any("".join(s) in val_texts for s in sp.train)
    # the cleaning left no marker behind
    assert not any(ch in "[]/%" for s in sp.train for w in s for ch in w)


def test_shipped_pku_test_set(shipped):
    gold = shipped.test
    assert sum(1 for s in gold if s) == 1944
    assert sum(len(s) for s in gold) == 104372
    raw = read_raw_lines(DATA / "pku_sighan2005" / "pku_test.utf8.xz")
    assert len(raw) == len(gold)
    assert ["".join(s) for s in gold] == raw
    words = read_word_list(DATA / "pku_sighan2005" / "pku_training_words.utf8.xz")
    assert len(words) == 55303
