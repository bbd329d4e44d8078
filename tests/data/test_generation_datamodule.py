"""Sentiment LM data: the chunking rule, next-token targets with padding masked, the trimmed vocab."""

from __future__ import annotations

import zipfile

import pytest
import torch
from tests.conftest import ROOT

from bertlab.data.generation_datamodule import GenerationDataModule, lm_collate, segment_text, text_segmentate
from bertlab.data.sentiment import read_sentiment

ZIP = str(ROOT / "data/sentiment/sentiment.zip")
VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")


def test_short_text_is_one_stripped_chunk():
    assert segment_text("  很好，", 126) == ["很好"]
    assert segment_text("，，  ", 126) == []


def test_long_text_splits_at_separators_and_merges_greedily():
    sent = "这是一个测试句子。"  # 9 characters
    text = sent * 30  # 270 characters
    chunks = segment_text(text, 126)
    assert all(len(c) <= 126 for c in chunks)
    assert "".join(chunks) == text  # 。 is not stripped: nothing is lost
    # greedy (bert4keras): a sentence is added while len(chunk) + len(sentence w/o 。) <= maxlen - 1,
    # so 14 sentences (126 chars) make a chunk: 14 + 14 + 2
    assert [len(c) for c in chunks] == [126, 126, 18]


def test_separator_order_first_newline_then_full_stop_then_comma():
    text = "甲" * 60 + "，" + "乙" * 60 + "。" + "丙" * 60
    chunks = segment_text(text, 126)
    # 。 is tried before ，: the first piece (121 chars) ends at 。
    assert chunks == ["甲" * 60 + "，" + "乙" * 60 + "。", "丙" * 60]
    assert text_segmentate("a\nb", 1) == ["a", "b"]


def test_a_long_run_without_separators_is_cut_hard():
    text = "好" * 300
    assert [len(c) for c in segment_text(text, 126)] == [126, 126, 48]


def test_real_corpus_chunks_fit_and_keep_every_character():
    rows = read_sentiment(ZIP, "valid")
    for text, _ in rows:
        chunks = segment_text(text, 126)
        assert all(0 < len(c) <= 126 for c in chunks)
        squeeze = "".join(ch for ch in text if not ch.isspace() and ch not in "，,；;")
        assert "".join(ch for c in chunks for ch in c if not ch.isspace() and ch not in "，,；;") == squeeze


def test_collate_targets_are_next_tokens_with_padding_masked():
    feats = [{"input_ids": [2, 10, 11, 3], "label": 1, "index": 0}, {"input_ids": [2, 12, 3], "label": 0, "index": 1}]
    b = lm_collate(feats, pad_id=0)
    assert b["input_ids"].tolist() == [[2, 10, 11, 3], [2, 12, 3, 0]]
    assert b["targets"].tolist() == [[10, 11, 3, -100], [12, 3, -100, -100]]
    assert b["attention_mask"].tolist() == [[True] * 4, [True, True, True, False]]
    assert b["cond_labels"].tolist() == [1, 0]


def _tiny_zip(tmp_path):
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(
            "sentiment/sentiment.train.data", "房间很好，服务热情\t1\n太差了 再也不来\t0\n" + "好" * 200 + "\t1\n"
        )
        zf.writestr("sentiment/sentiment.valid.data", "还不错\t1\n")
        zf.writestr("sentiment/sentiment.test.data", "很差劲\t0\n")
    return str(z)


def test_datamodule_features_labels_and_trimmed_vocab(tmp_path):
    dm = GenerationDataModule(_tiny_zip(tmp_path), VOCAB, max_len=128, batch_size=2, trim_vocab="corpus")
    with pytest.raises(RuntimeError, match=r"before setup\('fit'\)"):  # model_kwargs never reads the data itself
        dm.model_kwargs()
    dm.setup("fit")
    kw = dm.model_kwargs()
    assert dm.labels["train"] == [1, 0, 1, 1]  # the 200-char text became two chunks, both label 1
    assert [len(t) for t in dm.texts["train"]] == [9, 8, 126, 74]  # inner spaces are kept in the text
    tok = dm.tokenizer
    # the tokenizer looks characters up NFKC-normalised: the full-width comma comes back as ","
    assert dm.decode_ids(dm.features["train"][0]["input_ids"][1:-1]) == "房间很好,服务热情"
    assert (
        dm.features["train"][0]["input_ids"][0] == tok.cls_id and dm.features["train"][0]["input_ids"][-1] == tok.sep_id
    )
    assert kw["vocab_keep_ids"] == dm.keep_ids and len(tok) == len(dm.keep_ids) < 21128
    assert tok.unk_id not in dm.features["test"][0]["input_ids"]  # CJK chars of the vocab are all kept
    assert kw["special_ids"]["sep"] == tok.sep_id and set(kw["special_ids"]) == {"pad", "unk", "cls", "sep", "mask"}
    batch = next(iter(dm.val_dataloader()))
    assert batch["cond_labels"].tolist() == [1]
    assert dm.label_id("positive") == 1 and dm.label_id(0) == 0
    with pytest.raises(ValueError, match="unknown label 2"):
        dm.label_id(2)


def test_shipped_corpus_sizes_and_vocab():
    dm = GenerationDataModule(ZIP, VOCAB, max_eval_sentences=50)
    dm.setup("fit")
    assert dm.stats["train_texts"] == 16883 and dm.stats["val_texts"] == 2111
    assert dm.stats["train_chunks"] == 24823 and max(len(t) for t in dm.texts["train"]) <= 126
    assert 4400 < dm.stats["vocab_size"] < 7500
    # the trimmed vocab never turns a training character into [UNK]
    unk = dm.tokenizer.unk_id
    full_unk = sum(f["input_ids"].count(unk) for f in dm.features["train"])
    from bertlab.data.tokenization import CharTokenizer

    full = CharTokenizer(VOCAB)
    assert full_unk == sum(full.encode(t).ids.count(full.unk_id) for t in dm.texts["train"])
    b = next(iter(dm.train_dataloader()))
    assert torch.equal(
        b["targets"][:, :-1][b["attention_mask"][:, 1:]], b["input_ids"][:, 1:][b["attention_mask"][:, 1:]]
    )


def test_overfit_texts_makes_every_split_the_first_training_texts():
    dm = GenerationDataModule(ZIP, VOCAB, overfit_texts=30)
    dm.setup("fit")
    first = read_sentiment(ZIP, "train")[:30]
    chunks = [(c, lab) for text, lab in first for c in segment_text(text, 126)]
    for split in ("train", "val", "test"):
        assert list(zip(dm.texts[split], dm.labels[split])) == chunks
        assert dm.stats[f"{split}_texts"] == 30
    with pytest.raises(Exception, match="data.overfit_texts"):
        GenerationDataModule(ZIP, VOCAB, overfit_texts=0)
