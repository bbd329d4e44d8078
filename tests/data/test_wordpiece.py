"""data.tokenizer=wordpiece: BertTokenizerFast's ids, labels placed through the offsets, predictions
mapped back so every input character is kept (issue 29 section 3)."""

from __future__ import annotations

import json
import lzma
from collections import Counter
from pathlib import Path

import pytest

from bertlab.data.alignment import bmes_over_tokens, bmes_to_chars, entity_tags, token_span
from bertlab.data.cws import read_segmented_file, words_from_tags, words_to_tags
from bertlab.data.cws_datamodule import CwsDataModule
from bertlab.data.tokenization import CharTokenizer, WordPieceTokenizer, make_tokenizer
from bertlab.data.vocab import trim_vocab
from bertlab.metrics.entities import extract_entities

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
VOCAB = str(DATA / "vocab" / "bert-base-chinese" / "vocab.txt")
S, B, M, E = 0, 1, 2, 3


def _lines(path: Path) -> list[str]:
    with lzma.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def _conll_sentences(path: Path) -> list[str]:
    out, cur = [], []
    for line in _lines(path):
        if line.strip():
            cur.append(line.split()[0])
        elif cur:
            out.append("".join(cur))
            cur = []
    return out + (["".join(cur)] if cur else [])


def _test_file_texts() -> dict[str, list[str]]:
    """Every line of the shipped test files (CoNLL files: their sentences; JSON: the texts)."""
    lic = [json.loads(line)["text"] for line in _lines(DATA / "triples/lic2019/dev_data.json.xz") if line.strip()]
    cmrc = json.loads(lzma.open(DATA / "mrc/cmrc2018/cmrc2018_dev.json.xz", "rt", encoding="utf-8").read())
    mrc = [p["context"] for d in cmrc["data"] for p in d["paragraphs"]]
    mrc += [qa["question"] for d in cmrc["data"] for p in d["paragraphs"] for qa in p["qas"]]
    return {
        "pku_test": _lines(DATA / "cws/pku_sighan2005/pku_test.utf8.xz"),
        "pku_test_gold": _lines(DATA / "cws/pku_sighan2005/pku_test_gold.utf8.xz"),
        "ner_pd_test": _conll_sentences(DATA / "ner/peoples_daily/example.test.xz"),
        "ner_resume_test": _conll_sentences(DATA / "ner/resume/test.char.bmes.xz"),
        "lic2019_dev": lic,
        "cmrc2018_dev": mrc,
    }


def reference_tokenizer(vocab_file: str):
    """``BertTokenizerFast(vocab_file=..., do_lower_case=True)``; transformers >= 5 silently ignores
    ``vocab_file=`` (a 5-token tokenizer that makes every word [UNK]): its argument is ``vocab=``."""
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast(vocab_file=vocab_file, do_lower_case=True)
    if len(tok) < 100:
        tok = BertTokenizerFast(vocab=vocab_file, do_lower_case=True)
    n = sum(1 for _ in open(vocab_file, encoding="utf-8"))
    assert len(tok) == n, "the reference tokenizer did not load the vocab"
    return tok


def test_wordpiece_ids_equal_bert_tokenizer_fast_on_every_line_of_the_test_files():
    ref = reference_tokenizer(VOCAB)
    ours = WordPieceTokenizer(VOCAB)
    checked = 0
    for name, texts in _test_file_texts().items():
        want = ref(texts)["input_ids"]
        for i, (text, ids) in enumerate(zip(texts, want)):
            assert ours.encode(text).ids == ids, f"{name} line {i + 1}: {text[:40]!r}"
        checked += len(texts)
    assert checked > 10000
    # the reference tokenizes as BERT does: 1998 is one token of bert-base-chinese
    assert ref.convert_ids_to_tokens(ref("1998年")["input_ids"]) == ["[CLS]", "1998", "年", "[SEP]"]


def test_wordpiece_offsets_cover_their_characters():
    tok = WordPieceTokenizer(VOCAB)
    text = "1998年，iPhone6s很好 a\x00b"
    enc = tok.encode(text)
    pieces = [text[a:b] for a, b in zip(enc.offsets, enc.ends) if a >= 0]
    assert pieces == ["1998", "年", "，", "iPhone6", "s", "很", "好", "a\x00b"]
    assert tok.tokens[enc.ids[4]] == "iphone6" and tok.tokens[enc.ids[5]] == "##s"
    # the DataModules' tokenizer folds full-width ASCII one character for one: same tokens, same offsets
    folded = make_tokenizer("wordpiece", VOCAB).encode("１９９８年ｉＰｈｏｎｅ")
    assert folded.ids == tok.encode("1998年iPhone").ids and folded.ends[1:-1] == [4, 5, 11]
    # char mode: ends are offsets + 1
    ch = CharTokenizer(VOCAB).encode("ab c")
    assert ch.ends == [-1, 1, 2, 4, -1]


def test_exported_backend_folds_width_like_encode():
    tok = make_tokenizer("wordpiece", VOCAB)
    hf = tok.hf_tokenizer()
    for text in ["１９９８年ｉＰｈｏｎｅ６，中国", "PKU 1998年"]:
        assert hf.encode(text).ids == tok.encode(text).ids


# --------------------------------------------------------------------------- CWS
def test_cws_tags_each_words_tokens_bmes():
    tok = WordPieceTokenizer(VOCAB)
    words = ["1998年", "iPhone", "很", "好用", "iPhone6s"]
    text = "".join(words)
    enc = tok.encode(text)
    tags, inside = bmes_over_tokens(enc.offsets, enc.ends, words)
    names = [tok.tokens[i] for i in enc.ids]
    assert names == ["[CLS]", "1998", "年", "iphone", "很", "好", "用", "iphone6", "##s", "[SEP]"]
    assert tags == [S, B, E, S, S, B, E, B, E, S] and inside == 0
    # a word boundary inside a token (iPhone | 6s): the token's words become one
    tags, inside = bmes_over_tokens(enc.offsets, enc.ends, ["1998", "年", "iPhone", "很", "好用", "iPhone", "6s"])
    assert tags == [S, S, S, S, S, B, E, B, E, S] and inside == 1


def test_cws_perfect_token_tags_give_the_gold_segmentation_back_with_every_character():
    tok = make_tokenizer("wordpiece", VOCAB)
    gold = [words for _, words in read_segmented_file(DATA / "cws/pku_sighan2005/pku_test_gold.utf8.xz") if words]
    joined = 0
    for words in gold:
        text = "".join(words)
        enc = tok.encode(text)
        tags, inside = bmes_over_tokens(enc.offsets, enc.ends, words)
        chars = bmes_to_chars(len(text), enc.offsets, enc.ends, tags)
        got = words_from_tags(text, chars)
        assert "".join(got) == text
        if inside == 0:
            assert got == words
        joined += inside
    assert joined < 50  # boundaries inside a token are rare in the PKU test set


def test_cws_characters_without_a_token_are_kept():
    tok = WordPieceTokenizer(VOCAB)
    text = "我\x00爱 iPhone\u200b6"
    enc = tok.encode(text)
    tags = [S] * len(enc.ids)
    chars = bmes_to_chars(len(text), enc.offsets, enc.ends, tags)
    assert chars[1] is None and chars[3] is None  # the control character and the space: no token
    ct = [None if ch.isspace() else (S if t is None else t) for ch, t in zip(text, chars)]
    words = words_from_tags(text, ct)
    assert "".join(words) == "".join(text.split())


@pytest.fixture(scope="module")
def cws_dm():
    root = DATA / "cws"
    d = CwsDataModule(
        train_files=[str(root / "peoples_daily_1998/cv-5-filter_test.txt.xz")],
        test_raw_file=str(root / "pku_sighan2005/pku_test.utf8.xz"),
        test_gold_file=str(root / "pku_sighan2005/pku_test_gold.utf8.xz"),
        train_words_file=str(root / "pku_sighan2005/pku_training_words.utf8.xz"),
        vocab_file=VOCAB,
        max_len=64,
        max_train_chars=30000,
        trim_vocab="corpus",
        tokenizer="wordpiece",
    )
    d.setup("fit")
    return d


def test_cws_datamodule_wordpiece_features_and_gold_round_trip(cws_dm):
    dm = cws_dm
    tok = dm.tokenizer
    assert tok.mode == "wordpiece"
    for f in dm.features["train"]:
        assert len(f["input_ids"]) <= 64 and len(f["labels"]) == len(f["input_ids"])
    # training People's Daily writes digits full width: they are the PKU test's ASCII tokens
    assert "1998" in tok.vocab and tok.vocab["1998"] in {i for f in dm.features["train"] for i in f["input_ids"]}
    # perfect token tags on the test pieces -> the gold words of every line, every character kept
    preds = {}
    for idx, (piece, feat) in enumerate(zip(dm.pieces["test"], dm.features["test"])):
        gold_chars = [t for t in words_to_tags(dm.gold["test"][piece.sent])]
        nospace = [k for k, ch in enumerate(dm.texts["test"][piece.sent]) if not ch.isspace()]
        # the gold tag of each character of the piece, by its position in the line
        pos = {k: gold_chars[i] for i, k in enumerate(nospace)}
        piece_words = words_from_tags(piece.text, [pos.get(piece.start + k) for k in range(len(piece.text))])
        tags, _ = bmes_over_tokens(feat["offsets"], feat["ends"], piece_words)
        preds[idx] = tags
    outs = [words_from_tags(t, ct) for t, ct in zip(dm.texts["test"], dm.decode("test", preds))]
    assert len(outs) == len(dm.texts["test"]) == 1945
    exact = 0
    for text, gold, got in zip(dm.texts["test"], dm.gold["test"], outs):
        assert "".join(got) == "".join(text.split())
        exact += got == gold
    assert exact >= 1900  # only lines with a word boundary inside a token differ


# --------------------------------------------------------------------------- trim
def test_corpus_trim_keeps_the_pieces_and_wordpiece_over_it_tokenizes_training_texts_alike():
    full = make_tokenizer("wordpiece", VOCAB)
    texts = ["1998年iPhone6s", "２００５年，他说"]
    used = full.training_ids(texts)
    keep = trim_vocab(full.tokens, "corpus", used, wordpiece=True)
    trimmed = make_tokenizer("wordpiece", VOCAB, keep_ids=keep)
    for text in texts:
        a, b = full.encode(text), trimmed.encode(text)
        assert [full.tokens[i] for i in a.ids] == [trimmed.tokens[i] for i in b.ids]
        assert a.offsets == b.offsets and a.ends == b.ends
    # an unseen number is pieced from kept pieces, not [UNK]
    enc = trimmed.encode("2010年")
    assert trimmed.unk_id not in enc.ids and "".join(trimmed.tokens[i] for i in enc.ids[1:-1]).replace("##", "") == (
        "2010年"
    )
    # char mode's corpus trim is unchanged: the characters of the texts
    char = CharTokenizer(VOCAB)
    assert char.training_ids(texts) == {char.char_id(ch) for t in texts for ch in t}


# --------------------------------------------------------------------------- NER
def test_ner_entity_spans_through_offsets_and_back():
    tok = WordPieceTokenizer(VOCAB)
    text = "张三买了iPhone6s和MacBook"
    chars = ["O"] * len(text)
    for s, e, typ in [(0, 2, "PER"), (4, 10, "PRO"), (13, 20, "PRO")]:  # iPhone (boundary inside iphone6), MacBook
        chars[s:e] = entity_tags(e - s, [(typ, 0, e - s)], "BIO")
    enc = tok.encode(text)
    ents = extract_entities(chars, "BIO")
    spans = [token_span(enc.offsets, enc.ends, s, e) for _, s, e in ents]
    assert spans[0] == (1, 2) and spans[1] is None and spans[2] is not None
    names = [tok.tokens[i] for i in enc.ids]
    i, j = spans[2]
    assert "".join(n.removeprefix("##") for n in names[i : j + 1]) == "macbook"
    assert entity_tags(5, [("PER", 1, 3)], "BMES") == ["O", "B-PER", "E-PER", "O", "O"]
    assert entity_tags(3, [("PER", 1, 2)], "BMES") == ["O", "S-PER", "O"]


def test_ner_datamodule_wordpiece_labels_and_mapping_back(tmp_path):
    from bertlab.data.ner_datamodule import NerDataModule

    dm = NerDataModule(
        dataset="resume",
        data_dir=str(DATA),
        scheme="BMES",
        types=["NAME", "ORG", "TITLE", "EDU", "PRO", "CONT", "LOC", "RACE"],
        vocab_file=VOCAB,
        max_len=64,
        max_train_chars=20000,
        max_eval_sentences=60,
        tokenizer="wordpiece",
    )
    dm.setup("fit")
    assert dm.stats["train_entities_total"] > 100
    for f in dm.features["train"]:
        assert len(f["labels"]) == len(f["input_ids"])
        tags = [dm.labels[t] for t in f["labels"]]
        assert tags[0] == "O" and tags[-1] == "O"
    # perfect token tags (a token's tag: its characters' gold tags read as one) -> the gold back,
    # also for an entity cut between two evaluation pieces (max_len 64)
    preds = {}
    for idx, (piece, feat) in enumerate(zip(dm.pieces["test"], dm.features["test"])):
        gold = dm.gold["test"][piece.sent]
        tags = []
        for a, b in zip(feat["offsets"], feat["ends"]):
            first, last = ("O", "O") if a < 0 else (gold[piece.start + a], gold[piece.start + b - 1])
            if first != "O" and b - a > 1:  # begins where the first char begins, ends where the last ends
                begins, finishes = first[0] in "BS", last[0] in "ES"
                first = f"{'S' if begins and finishes else 'B' if begins else 'E' if finishes else 'M'}{first[1:]}"
            tags.append(dm.label_id[first])
        preds[idx] = tags
    char_tags = dm.decode("test", preds)
    cut = 0
    for text, gold, ct in zip(dm.texts["test"], dm.gold["test"], char_tags):
        assert len(ct) == len(text)
        assert extract_entities(dm.tag_strings(ct), dm.scheme) == extract_entities(gold, dm.scheme)
        cut += sum(1 for p in dm.pieces["test"] if p.start > 0 and text is dm.texts["test"][p.sent])
    assert cut > 0  # some sentences are cut into pieces


# --------------------------------------------------------------------------- triples
def test_triples_spans_through_offsets_count_boundaries_inside_tokens():
    from bertlab.data.triples_datamodule import locate_triples_by_offsets

    tok = WordPieceTokenizer(VOCAB)
    text = "苹果公司发布了iPhone6s，售价5288元"
    full = tok.encode(text)
    spo = [("苹果公司", "产品", "iPhone6s"), ("苹果公司", "产品", "6s"), ("iPhone6s", "价格", "5288元")]
    spoes, counts = locate_triples_by_offsets(text, full, len(full.ids), spo, {"产品": 0, "价格": 1})
    assert counts == Counter(located=2, inside_token=1)
    names = [tok.tokens[i] for i in full.ids]
    (s0, s1), objs = next(iter(spoes.items()))
    assert names[s0 : s1 + 1] == ["苹", "果", "公", "司"]
    o0, o1, p = objs[0]
    assert names[o0 : o1 + 1] == ["iphone6", "##s"] and p == 0
    # cut input: a span past the cut is beyond max_len
    _, counts = locate_triples_by_offsets(text, full, 6, spo[:1], {"产品": 0})
    assert counts == Counter(beyond_max_len=1)


# --------------------------------------------------------------------------- MRC
def test_mrc_answers_are_token_spans_and_decode_back_to_text():
    from bertlab.data.mrc import MrcQuestion, Passage
    from bertlab.data.mrc_datamodule import MrcDataModule

    dm = MrcDataModule(vocab_file=VOCAB, source="native", files=["x.json"], tokenizer="wordpiece")
    dm.build_tokenizer()
    q = MrcQuestion(
        "1",
        "苹果哪年发布iPhone？",
        [Passage("2007年苹果发布了iPhone手机。"), Passage("iPhone6s于2015年发布"), Passage("没有答案")],
        ["2007年", "2015年"],
    )
    enc = dm.encode_question(q, with_targets=True)
    tok = dm.tokenizer
    assert [tok.tokens[i] for i in enc.passages[0].answer_ids] == ["2007", "年"]
    assert [tok.tokens[i] for i in enc.passages[1].answer_ids] == ["2015", "年"]
    assert enc.passages[2].answer_ids == []
    # an answer only inside a token gives no target (counted)
    q2 = MrcQuestion("2", "型号", [Passage("iPhone6s很好")], ["6s"])
    assert dm.encode_question(q2, with_targets=True).passages[0].answer_ids == []
    assert dm._counts["train_answers_inside_tokens"] == 1
    # a decoded token span maps back to the passage text
    dm.questions["test"], dm.encoded["test"] = [q], [enc]
    dm.refs["test"], _ = dm._eval_features([enc])
    p = enc.passages[0]
    start = p.ids.index(tok.vocab["iphone"])
    out = dm.decode("test", {0: {"tokens": p.ids[start : start + 2], "start": start, "score": 1.0}})
    assert out[0][0]["answer"] == "iPhone手"


# --------------------------------------------------------------------------- sentiment
def test_sentiment_wordpiece_features():
    from bertlab.data.classification_datamodule import ClassificationDataModule

    dm = ClassificationDataModule(
        path=str(DATA / "sentiment/sentiment.zip"),
        vocab_file=VOCAB,
        max_len=32,
        max_train_examples=200,
        max_eval_examples=20,
        tokenizer="wordpiece",
    )
    dm.setup("fit")
    tok = dm.tokenizer
    assert tok.mode == "wordpiece"
    f = dm._encode("iPhone6s的屏幕1998年很好", 0)
    assert [tok.tokens[i] for i in f["input_ids"]][:4] == ["[CLS]", "iphone6", "##s", "的"]


# --------------------------------------------------------------------------- config
def test_tokenizer_defaults_to_wordpiece_with_a_pretrained_encoder(make_cfg):
    # the main job: WordPiece also offline (docs/results.md section 1); other fresh encoders: char
    assert make_cfg(["experiment=cws_crf"]).data.tokenizer == "wordpiece"
    assert make_cfg(["experiment=cws_crf", "data.tokenizer=char"]).data.tokenizer == "char"
    assert make_cfg(["experiment=crf_layer1/crf1"]).data.tokenizer == "char"
    assert make_cfg(["experiment=pretrain_compare"]).data.tokenizer == "char"
    assert make_cfg(["experiment=cws_crf", "encoder.pretrained=/some/bert-base-chinese"]).data.tokenizer == "wordpiece"
    for exp in ("ner_crf", "triples", "mrc_mlm", "mrc_seq2seq"):
        assert make_cfg([f"experiment={exp}", "encoder=bert_base"]).data.tokenizer == "wordpiece"
        assert make_cfg([f"experiment={exp}"]).data.tokenizer == "char"
    # the small models pretrained here saw one token per character
    assert make_cfg(["experiment=cws_crf", "encoder=bert_small_pretrained"]).data.tokenizer == "char"
    assert make_cfg(["experiment=albert_unshared"]).data.tokenizer == "char"
    assert make_cfg(["experiment=sentiment_cls"]).data.tokenizer == "char"
    hf = ["experiment=sentiment_cls", "encoder.pretrained=/x", "encoder.pretrained_tokenizer=wordpiece"]
    assert make_cfg(hf).data.tokenizer == "wordpiece"
    chosen = make_cfg(["experiment=cws_crf", "encoder=bert_base", "data.tokenizer=char"])
    assert chosen.data.tokenizer == "char"


def test_a_run_saved_before_the_key_resumes_as_char():
    from bertlab.train import config_changes

    saved = {"data": {"trim_vocab": "corpus"}}
    assert config_changes(saved, {"data": {"trim_vocab": "corpus", "tokenizer": "char"}}, []) == []
    assert config_changes(saved, {"data": {"trim_vocab": "corpus", "tokenizer": "wordpiece"}}, []) == [
        ("data.tokenizer", None, "wordpiece")
    ]


def test_tokenizer_choice_is_validated(make_cfg):
    from bertlab.utils.errors import ConfigError
    from bertlab.utils.hydra_utils import validate_config

    with pytest.raises(ConfigError, match="config key 'data.tokenizer': must be one of char | wordpiece"):
        validate_config(make_cfg(["experiment=cws_crf", "data.tokenizer=bpe"]))


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_tiny_wordpiece_cws_run_and_its_checkpoint_keep_the_tokenizer(tmp_path):
    """Train a tiny CWS model on WordPiece; evaluate / predict from its checkpoint use WordPiece
    (the run config inside), keep every input character, and refuse another tokenizer."""
    from hydra.core.global_hydra import GlobalHydra
    from tests.conftest import TINY_CWS_RUN, compose_cfg

    from bertlab.runs import load_run, predict_texts
    from bertlab.train import train
    from bertlab.utils.errors import ConfigError

    out = tmp_path / "run"
    overrides = [o for o in TINY_CWS_RUN if not o.startswith("data.tokenizer=")]
    train(compose_cfg(out, [*overrides, "data.tokenizer=wordpiece"]))
    GlobalHydra.instance().clear()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_stats"]["train_word_boundaries_total"] > 0
    ckpt = str(out / "checkpoints" / "last.ckpt")
    model, dm, saved = load_run(ckpt)
    assert saved.data.tokenizer == "wordpiece" and dm.ensure_tokenizer().mode == "wordpiece"
    text = "1998年iPhone6s \x00发布了"
    (rec,) = predict_texts(model, dm, [text])
    words = [w["word"] for w in rec["words"]]
    assert "".join(words) == "".join(text.split())
    for w in rec["words"]:
        assert text[w["start"] : w["end"]] == w["word"]
    with pytest.raises(ConfigError, match="data.tokenizer"):
        load_run(ckpt, {"tokenizer": "char"})
