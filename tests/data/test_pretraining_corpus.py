"""The pretraining corpus holds training texts only: no dev/test text of any task enters it."""

from __future__ import annotations

import hashlib
import json
import lzma
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from bertlab.data.pretraining_corpus import (
    build_pretraining_corpus,
    cmrc_split_of_context,
    normalise,
    read_cmrc_contexts,
)
from bertlab.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
PD = sorted(str(p) for p in (DATA / "cws/peoples_daily_1998").glob("cv-*-filter_test.txt.xz"))
CMRC = [str(DATA / "mrc/cmrc2018/cmrc2018_dev.json.xz"), str(DATA / "mrc/cmrc2018/cmrc2018_trial.json.xz")]
NER = [str(DATA / "ner/peoples_daily/example.dev.xz"), str(DATA / "ner/peoples_daily/example.test.xz")]


def sha1_rule(context: str) -> str:  # the documented rule, written out independently
    b = int(hashlib.sha1(context.encode("utf-8")).hexdigest(), 16) % 10
    return {0: "test", 1: "val"}.get(b, "train")


def test_cmrc_split_rule_is_the_documented_hash():
    texts = [f"第{i}段上下文。" for i in range(300)] + ["", "a", "北京"]
    assert [cmrc_split_of_context(t) for t in texts] == [sha1_rule(t) for t in texts]
    counts = Counter(cmrc_split_of_context(t) for t in texts)
    assert set(counts) == {"train", "val", "test"} and counts["train"] > counts["val"] + counts["test"]
    with pytest.raises(TypeError):
        cmrc_split_of_context(None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- synthetic fixture
def _write_fixture(tmp_path: Path) -> dict:
    pd1 = tmp_path / "pd1.txt"
    pd2 = tmp_path / "pd2.txt"
    # 10 lines per fold; val = every 10th line of the LAST fold (line 10 of pd2)
    lines1 = ["[中国 人民] 银行 发布 公告 。", "测试 句子 一 。"] + [f"训练 文本 {i} 号 。" for i in range(8)]
    lines2 = [f"第二 份 文件 {i} 。" for i in range(9)] + ["验证 句子 。"]
    lines2[3] = "训练 文本 0 号 。"  # a duplicate of an earlier fold: dropped
    lines2[4] = "验证 句子 。"  # equals the validation line: never in training
    pd1.write_text("\n".join(lines1) + "\n", encoding="utf-8")
    pd2.write_text("\n".join(lines2) + "\n", encoding="utf-8")
    gold = tmp_path / "gold.txt"
    gold.write_text("测试  句子  一  。\n另外  一句  。\n", encoding="utf-8")  # PKU test: 2 spaces
    senti = tmp_path / "sentiment.zip"
    with zipfile.ZipFile(senti, "w") as zf:
        zf.writestr("sentiment/sentiment.train.data", "很好的酒店\t1\n太差了\t0\n这是测试集里的句子\t0\n")
        zf.writestr("sentiment/sentiment.valid.data", "服务一般\t0\n")
        zf.writestr("sentiment/sentiment.test.data", "这是测试集里的句子\t0\n")
    lic_train = tmp_path / "lic_train.json"
    lic_dev = tmp_path / "lic_dev.json"
    lic_train.write_text(
        "\n".join(
            json.dumps({"text": t, "spo_list": []}, ensure_ascii=False)
            for t in ["《红楼梦》的作者是曹雪芹", "开发集也有的句子"]
        )
        + "\n",
        encoding="utf-8",
    )
    lic_dev.write_text(
        json.dumps({"text": "开发集也有的句子", "spo_list": []}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    contexts = [f"这是第{i}个阅读理解段落。" for i in range(40)]
    cmrc = tmp_path / "cmrc.json"
    cmrc.write_text(
        json.dumps({"data": [{"paragraphs": [{"context": c, "qas": []} for c in contexts]}]}, ensure_ascii=False),
        encoding="utf-8",
    )
    ner = tmp_path / "ner.dev"
    ner.write_text("第 O\n二 O\n份 O\n文 O\n件 O\n1 O\n。 O\n\n", encoding="utf-8")
    return dict(
        pd=[str(pd1), str(pd2)],
        gold=str(gold),
        senti=str(senti),
        lic_train=str(lic_train),
        lic_dev=str(lic_dev),
        cmrc=[str(cmrc)],
        contexts=contexts,
        ner=str(ner),
    )


def test_synthetic_corpus_keeps_exactly_the_training_texts(tmp_path):
    f = _write_fixture(tmp_path)
    corpus = build_pretraining_corpus(
        f["pd"], f["gold"], f["senti"], f["lic_train"], f["lic_dev"], f["cmrc"], extra_heldout_files=[f["ner"]]
    )
    by_source = {
        s: [t.text for t in corpus.texts if t.source == s] for s in ("peoples_daily", "sentiment", "lic2019", "cmrc")
    }
    expected_pd = (
        ["中国人民银行发布公告。"]
        + [f"训练文本{i}号。" for i in range(8)]
        + [f"第二份文件{i}。" for i in (0, 2, 5, 6, 7, 8)]
    )  # 1: NER held out, 3: duplicate, 4 and 10: validation
    assert by_source["peoples_daily"] == expected_pd
    assert by_source["sentiment"] == ["很好的酒店", "太差了"]  # the line repeated in the test split is out
    assert by_source["lic2019"] == ["《红楼梦》的作者是曹雪芹"]
    assert by_source["cmrc"] == [c for c in f["contexts"] if sha1_rule(c) == "train"]
    assert 0 < len(by_source["cmrc"]) < len(f["contexts"])
    pd_items = [t for t in corpus.texts if t.source == "peoples_daily"]
    assert pd_items[0].words == ("中国", "人民", "银行", "发布", "公告", "。")  # brackets stripped, words kept
    assert all(t.words is None for t in corpus.texts if t.source != "peoples_daily")
    assert corpus.dropped_heldout["sentiment"] == 1 and corpus.dropped_heldout["lic2019"] == 1
    only = build_pretraining_corpus(
        f["pd"], f["gold"], f["senti"], f["lic_train"], f["lic_dev"], f["cmrc"], sources=["sentiment"]
    )
    assert [t.text for t in only.texts] == ["很好的酒店", "太差了"]
    with pytest.raises(ConfigError, match="data.sources"):
        build_pretraining_corpus(
            f["pd"], f["gold"], f["senti"], f["lic_train"], f["lic_dev"], f["cmrc"], sources=["wiki"]
        )


def test_bad_cmrc_file_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1}', encoding="utf-8")
    with pytest.raises(DataError, match="bad.json"):
        read_cmrc_contexts([str(bad)])


# ----------------------------------------------------------------------- the shipped data
@pytest.fixture(scope="module")
def real_corpus():
    return build_pretraining_corpus(
        PD,
        str(DATA / "cws/pku_sighan2005/pku_test_gold.utf8.xz"),
        str(DATA / "sentiment/sentiment.zip"),
        str(DATA / "triples/lic2019/train_data.json.xz"),
        str(DATA / "triples/lic2019/dev_data.json.xz"),
        CMRC,
        NER,
    )


def _heldout_texts_read_independently() -> dict[str, set[str]]:
    """Every dev/test text of the shipped data, read straight from the files."""
    from bertlab.data.cws import load_cws_splits

    out: dict[str, set[str]] = {}
    gold = lzma.open(DATA / "cws/pku_sighan2005/pku_test_gold.utf8.xz", "rt", encoding="utf-8").read().splitlines()
    out["pku_test"] = {"".join(line.split()) for line in gold if line.strip()}
    splits = load_cws_splits(PD, str(DATA / "cws/pku_sighan2005/pku_test_gold.utf8.xz"))
    out["cws_val"] = {"".join(w) for w in splits.val}
    with zipfile.ZipFile(DATA / "sentiment/sentiment.zip") as zf:
        out["sentiment_valid_test"] = {
            line.rsplit("\t", 1)[0]
            for split in ("valid", "test")
            for line in zf.read(f"sentiment/sentiment.{split}.data").decode("utf-8").splitlines()
            if line.strip()
        }
    dev = lzma.open(DATA / "triples/lic2019/dev_data.json.xz", "rt", encoding="utf-8").read().splitlines()
    out["lic2019_dev"] = {json.loads(line)["text"] for line in dev if line.strip()}
    ctx = set()
    for path in CMRC:
        for art in json.load(lzma.open(path, "rt", encoding="utf-8"))["data"]:
            ctx |= {p["context"] for p in art["paragraphs"]}
    out["cmrc_val_test"] = {c for c in ctx if sha1_rule(c) != "train"}
    return out


def test_no_dev_or_test_text_enters_the_shipped_corpus(real_corpus):
    heldout = _heldout_texts_read_independently()
    assert all(len(v) > 50 for v in heldout.values()), {k: len(v) for k, v in heldout.items()}
    keys = {normalise(t.text) for t in real_corpus.texts}
    raw = {t.text for t in real_corpus.texts}
    for name, texts in heldout.items():
        assert not raw & texts, name
        assert not keys & {normalise(t) for t in texts}, name  # nor in another width / spacing


def test_shipped_corpus_has_every_source_and_the_pd_segmentation(real_corpus):
    stats = real_corpus.stats()
    assert stats["peoples_daily_texts"] > 36000 and stats["sentiment_texts"] > 15000
    assert stats["lic2019_texts"] == 2601 and 800 < stats["cmrc_texts"] < 950
    assert stats["chars"] > 5_000_000
    # about 1,700 sentiment TRAINING lines repeat a valid/test line: they are dropped
    assert real_corpus.dropped_heldout["sentiment"] > 1000
    pd_items = [t for t in real_corpus.texts if t.source == "peoples_daily"]
    assert all(t.words is not None and "".join(t.words) == t.text for t in pd_items)
    assert sum(len(t.words) < len(t.text) for t in pd_items) > 0.9 * len(pd_items)  # real multi-char words
    assert {t.source for t in real_corpus.texts if t.words is None} == {"sentiment", "lic2019", "cmrc"}
