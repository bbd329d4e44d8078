"""NER data: the CoNLL reader's errors, tag schemes, long-sentence cuts and the shipped splits."""

from __future__ import annotations

import lzma
import random
from pathlib import Path

import pytest

from bertlab.data.ner import (
    check_gold_tags,
    cut_spans,
    load_ner_splits,
    read_conll_chars,
    scheme_labels,
    scheme_of_labels,
    split_tagged_sentence,
)
from bertlab.metrics.entities import extract_entities
from bertlab.utils.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "data"
BIO = scheme_labels("BIO", ["PER", "LOC", "ORG"])
BMES = scheme_labels("BMES", ["NAME", "ORG"])


def _write(tmp_path: Path, text: str, name: str = "f.txt", raw: bytes | None = None) -> Path:
    p = tmp_path / name
    p.write_bytes(raw if raw is not None else text.encode("utf-8"))
    return p


# --------------------------------------------------------------------------- schemes
def test_scheme_labels():
    assert BIO == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    assert BMES == ["O", "B-NAME", "M-NAME", "E-NAME", "S-NAME", "B-ORG", "M-ORG", "E-ORG", "S-ORG"]
    assert scheme_of_labels(BIO) == "BIO" and scheme_of_labels(BMES) == "BMES"
    for bad in (("BIOES", ["X"]), ("BIO", []), ("BIO", ["X", "X"]), ("BIO", ["A B"])):
        with pytest.raises(ValueError):
            scheme_labels(*bad)
    with pytest.raises(ValueError):
        scheme_of_labels(["O", "I-X", "E-X"])
    with pytest.raises(ValueError):
        scheme_of_labels(["B-X"])  # no O


def test_check_gold_tags():
    assert check_gold_tags(["B-X", "I-X", "O", "B-Y"], "BIO") is None
    assert check_gold_tags(["O", "I-X"], "BIO")[0] == 1
    assert check_gold_tags(["B-X", "I-Y"], "BIO")[0] == 1
    assert check_gold_tags(["B-X", "M-X", "E-X", "S-Y", "O"], "BMES") is None
    assert check_gold_tags(["O", "E-X"], "BMES")[0] == 1
    assert check_gold_tags(["S-X", "M-X"], "BMES")[0] == 1
    assert check_gold_tags(["B-X", "O"], "BMES")[0] == 0  # never closed
    assert check_gold_tags(["O", "B-X"], "BMES")[0] == 1  # open at the end of the sentence


# --------------------------------------------------------------------------- reading
def test_read_ok_with_crlf_bom_blank_runs_and_no_final_blank(tmp_path):
    text = "\ufeff张 B-PER\r\n三 I-PER\r\n去 O\r\n\r\n\r\n  \r\n北 B-LOC\r\n京 I-LOC"
    sents = read_conll_chars(_write(tmp_path, text), BIO)
    assert sents == [(1, ["张", "三", "去"], ["B-PER", "I-PER", "O"]), (7, ["北", "京"], ["B-LOC", "I-LOC"])]


def test_read_ideographic_space_is_a_character(tmp_path):
    sents = read_conll_chars(_write(tmp_path, "\u3000 O\n张\tB-PER\n"), BIO)
    assert sents == [(1, ["\u3000", "张"], ["O", "B-PER"])]


def test_read_xz(tmp_path):
    p = tmp_path / "f.txt.xz"
    p.write_bytes(lzma.compress("高 B-NAME\n勇 E-NAME\n\n".encode()))
    assert read_conll_chars(p, BMES) == [(1, ["高", "勇"], ["B-NAME", "E-NAME"])]


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("张 B-PER\n三\n", 2, "char TAG"),  # missing tag
        ("张 B-PER\n三 I-PER x\n", 2, "char TAG"),  # three fields
        ("张三 B-PER\n", 1, "one character"),
        ("张 B-PER\n三 I-XYZ\n", 2, "not one of the configured labels"),
        ("张 B-PER\n三 M-PER\n", 2, "not one of the configured labels"),  # a BMES tag in a BIO file
        ("a O\n\n张 O\n三 I-PER\n", 4, "ill-formed BIO"),  # I- after O
        ("张 B-PER\n三 I-LOC\n", 2, "ill-formed BIO"),  # type change
        ("a O\n\n三 I-PER\n", 3, "ill-formed BIO"),  # I- opening a sentence
    ],
)
def test_read_errors_name_file_and_line(tmp_path, text, line, what):
    p = _write(tmp_path, text)
    with pytest.raises(DataError, match=what) as info:
        read_conll_chars(p, BIO)
    assert info.value.line == line
    assert str(info.value).startswith(f"{p}:{line}:")


@pytest.mark.parametrize(
    "text, line",
    [
        ("a O\n高 M-NAME\n勇 E-NAME\n", 2),  # M- without B-
        ("高 S-NAME\n勇 E-NAME\n", 2),
        ("高 B-NAME\n勇 E-ORG\n", 1),  # B-NAME not closed by E-NAME
        ("高 B-NAME\n勇 M-NAME\n\n", 2),  # still open at the end of the sentence
    ],
)
def test_read_bmes_ill_formed_gold(tmp_path, text, line):
    with pytest.raises(DataError, match="ill-formed BMES") as info:
        read_conll_chars(_write(tmp_path, text), BMES)
    assert info.value.line == line
    # predictions may be ill formed
    assert read_conll_chars(_write(tmp_path, text), BMES, gold=False)


def test_join_broken_entities(tmp_path):
    text = "在 O\n中 B-ORG\n国 M-ORG\n\n银 M-ORG\n行 E-ORG\n\n好 O\n"
    p = _write(tmp_path, text)
    with pytest.raises(DataError) as info:
        read_conll_chars(p, BMES)
    assert info.value.line == 3
    sents = read_conll_chars(p, BMES, join_broken_entities=True)
    assert sents == [(1, list("在中国银行"), ["O", "B-ORG", "M-ORG", "M-ORG", "E-ORG"]), (8, ["好"], ["O"])]


def test_read_empty_or_missing_file(tmp_path):
    with pytest.raises(DataError, match="no sentence"):
        read_conll_chars(_write(tmp_path, "\n\n"), BIO)
    with pytest.raises(DataError, match="not found"):
        read_conll_chars(tmp_path / "nope.txt", BIO)
    with pytest.raises(DataError, match="UTF-8") as info:
        read_conll_chars(_write(tmp_path, "", raw="a O\n\xff O\n".encode("latin-1")), BIO)
    assert info.value.line == 2
    with pytest.raises(ValueError):
        read_conll_chars(_write(tmp_path, "a O\n"), ["B-X"])  # labels without O


# --------------------------------------------------------------------------- cutting
def _check_pieces(chars, tags, pieces, max_len, scheme):
    assert [c for p, _ in pieces for c in p] == list(chars)
    assert all(1 <= len(p) <= max_len for p, _ in pieces)
    for _p, t in pieces:
        assert check_gold_tags(t, scheme) is None


def test_cut_prefers_punctuation_outside_entities():
    chars = list("甲乙，丙丁戊己庚")
    tags = ["O"] * 8
    assert cut_spans(chars, 5, tags) == [(0, 3), (3, 8)]
    # the only punctuation inside an entity [1, 4): cut at the last free position instead
    tags = ["O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O"]
    assert cut_spans(chars, 5, tags) == [(0, 5), (5, 8)]
    tags = ["O", "O", "O", "O", "B-ORG", "I-ORG", "I-ORG", "O"]  # entity [4, 7)
    assert cut_spans(chars, 5, tags) == [(0, 3), (3, 8)]
    assert cut_spans(list("甲乙丙丁戊己庚"), 5, ["O", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG", "O"]) == [(0, 2), (2, 7)]
    assert cut_spans(list("甲乙丙"), 5) == [(0, 3)]
    assert cut_spans([], 5) == []
    with pytest.raises(ValueError):
        cut_spans(chars, 0)


def test_split_random_sentences_never_cuts_entities():
    rng = random.Random(0)
    for scheme, _labels in (("BIO", BIO), ("BMES", BMES)):
        for _ in range(300):
            # well-formed gold tags built from entities of length 1..4
            tags: list[str] = []
            while len(tags) < rng.randint(1, 40):
                if rng.random() < 0.5:
                    tags.append("O")
                    continue
                t, n = (
                    rng.choice(["ORG", "NAME"]) if scheme == "BMES" else rng.choice(["PER", "LOC"]),
                    rng.randint(1, 4),
                )
                if scheme == "BIO":
                    tags += [f"B-{t}"] + [f"I-{t}"] * (n - 1)
                else:
                    tags += [f"S-{t}"] if n == 1 else [f"B-{t}"] + [f"M-{t}"] * (n - 2) + [f"E-{t}"]
            chars = [rng.choice("甲乙丙，。") for _ in tags]
            max_len = rng.randint(4, 12)
            pieces = split_tagged_sentence(chars, tags, max_len, scheme)
            _check_pieces(chars, tags, pieces, max_len, scheme)
            assert [t for _, p in pieces for t in p] == tags  # no entity longer than max_len: tags unchanged


def test_split_over_long_entity_is_cut_and_retagged():
    chars = list("中华人民共和国")
    pieces = split_tagged_sentence(chars, ["B-LOC"] + ["I-LOC"] * 6, 3, "BIO")
    assert [t for _, t in pieces] == [["B-LOC", "I-LOC", "I-LOC"], ["B-LOC", "I-LOC", "I-LOC"], ["B-LOC"]]
    pieces = split_tagged_sentence(chars, ["B-ORG"] + ["M-ORG"] * 5 + ["E-ORG"], 3, "BMES")
    assert [t for _, t in pieces] == [["B-ORG", "M-ORG", "E-ORG"], ["B-ORG", "M-ORG", "E-ORG"], ["S-ORG"]]


# --------------------------------------------------------------------------- shipped data
def test_shipped_splits_counts():
    pd = load_ner_splits("peoples_daily", DATA)
    assert pd.scheme == "BIO" and pd.labels == BIO
    assert (len(pd.train), len(pd.val), len(pd.test)) == (4636, 1159, 1159)
    st = pd.stats()
    assert (st["train_entities"], st["val_entities"], st["test_entities"]) == (7707, 1982, 1837)
    assert (st["train_chars"], st["val_chars"], st["test_chars"]) == (219197, 55332, 54538)

    resume = load_ner_splits("resume", DATA)
    assert resume.scheme == "BMES" and len(resume.labels) == 33
    # train: 3,821 blank-separated blocks, two of them joined to the previous one
    assert (len(resume.train), len(resume.val), len(resume.test)) == (3819, 463, 477)
    st = resume.stats()
    assert (st["train_entities"], st["val_entities"], st["test_entities"]) == (13438, 1497, 1630)


def test_peoples_daily_dev_train_split_holds_out_every_tenth_dev_sentence():
    card = load_ner_splits("peoples_daily", DATA)
    pd = load_ner_splits("peoples_daily", DATA, split="dev_train")
    assert (len(pd.train), len(pd.val), len(pd.test)) == (2318 - 231, 231, 4636)
    dev = card.val + card.test  # the same 2,318 dev sentences, in another order
    texts = lambda split: sorted("".join(c) for _, c, _ in split)  # noqa: E731
    assert texts(pd.train + pd.val) == texts(dev) and texts(pd.test) == texts(card.train)
    assert not set(texts(pd.val)) & set(texts(pd.train)) - {""}  # held out
    with pytest.raises(ValueError, match="split rule 'dev_train' for resume"):
        load_ner_splits("resume", DATA, split="dev_train")
    with pytest.raises(ValueError, match="split rule 'nope'"):
        load_ner_splits("peoples_daily", DATA, split="nope")


def test_shipped_long_sentences_split_outside_entities():
    pd = load_ner_splits("peoples_daily", DATA)
    long = [(c, t) for _, c, t in pd.train + pd.val + pd.test if len(c) > 126]
    assert len(long) == 120
    for chars, tags in long:
        for max_len in (126, 510):
            pieces = split_tagged_sentence(chars, tags, max_len, "BIO")
            _check_pieces(chars, tags, pieces, max_len, "BIO")
            assert [t for _, p in pieces for t in p] == tags
            n = sum(len(extract_entities(t, "BIO")) for _, t in pieces)
            assert n == len(extract_entities(tags, "BIO"))
