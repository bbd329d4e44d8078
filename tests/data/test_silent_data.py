"""Data that used to train or score silently wrong (issue 27 §3): each is now refused before
training with one line naming the file and line, or read correctly with a WARNING.

* a segmented file (the gold file) as the raw test input: its blanks handed the model the
  word boundaries (test F1 0.84 for a model at 0.24);
* POS-tagged People's Daily (``迈向/v 充满/v``) as a training fold: ``/v`` became part of
  the words;
* CR-only line endings: the whole file was one line (a 290k-character "sentence");
* triples whose subject/object is not in the text: 639 of 716 dropped with only a warning.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bertlab.data.cws import load_cws_splits, read_raw_lines
from bertlab.data.io import open_text_lines
from bertlab.data.ner import read_conll_chars, scheme_labels
from bertlab.data.sentiment import read_sentiment
from bertlab.data.triples import read_triples
from bertlab.data.triples_datamodule import TripleDataModule
from bertlab.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")
SCHEMA = str(ROOT / "data/triples/lic2019/all_50_schemas.xz")
GOLD = ["共同  创造  美好  的  新  世纪  。", "中国  人民  爱  和平  。", "我们  在  北京  工作  。"]
SENTS = [f"这  是  第{i}  句  话  。" for i in range(60)]  # distinct sentences (a fold)
POS = "迈向/v 充满/v 希望/n 的/u 新/a 世纪/n ——/w 一九九八年/t 新年/t 讲话/n"


def _write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_bytes("".join(line + end for line in lines).encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- segmented file as raw input
def test_segmented_file_as_raw_input_stops_naming_file_and_line(tmp_path):
    gold = _write(tmp_path / "gold.txt", GOLD * 10)
    with pytest.raises(DataError) as err:
        read_raw_lines(gold)
    msg = str(err.value)
    assert msg.startswith(f"{gold}:1: expected raw (unsegmented) text, one sentence a line, found segmented text")
    assert "20 of the first 20 lines" in msg and "data.allow_segmented_raw=true" in msg


def test_allow_segmented_raw_reads_it_and_says_so(tmp_path, caplog):
    gold = _write(tmp_path / "gold.txt", GOLD)
    with caplog.at_level(logging.WARNING, logger="bertlab.data.cws"):
        assert read_raw_lines(gold, allow_segmented=True) == GOLD
    assert "3 of 3 lines hold a blank between Chinese characters" in caplog.text


def test_raw_text_with_blanks_outside_chinese_passes(tmp_path):
    lines = ["我们使用Windows 95操作系统。", "北京 2008年奥运会", "共同创造美好的新世纪。", ""] * 30
    assert read_raw_lines(_write(tmp_path / "raw.txt", lines)) == lines


# ----------------------------------------------------------------------------- POS-tagged text as segmentation
def test_pos_tagged_peoples_daily_as_training_fold_stops(tmp_path):
    pos = _write(tmp_path / "pd_pos.txt", [POS, "[中央/n 人民/n 广播/vn 电台/n]nt 报道/v 。/w"] * 15)
    gold = _write(tmp_path / "gold.txt", GOLD)
    with pytest.raises(DataError, match=r"pd_pos\.txt:1: expected segmented text .*found POS-tagged words"):
        load_cws_splits([pos], gold)


def test_pos_tagged_gold_file_stops(tmp_path):
    train = _write(tmp_path / "train.txt", GOLD * 5)
    gold = _write(tmp_path / "gold.txt", [POS])
    with pytest.raises(DataError, match=r"gold\.txt:1: .*found POS-tagged words \('word/TAG', 10 of 10 words\)"):
        load_cws_splits([train], gold)


# ----------------------------------------------------------------------------- CR-only line endings
def test_cr_only_file_is_read_line_by_line_with_a_warning(tmp_path, caplog):
    path = _write(tmp_path / "mac.txt", ["第一行", "", "第三行"], end="\r")
    with caplog.at_level(logging.WARNING, logger="bertlab.data.io"):
        assert list(open_text_lines(path)) == [(1, "第一行"), (2, ""), (3, "第三行")]
    assert "3 lone CR line endings (old Mac style, first at line 1) read as line breaks" in caplog.text


def test_cr_only_errors_name_the_line_an_editor_shows(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes("甲\r乙\r".encode() + b"\xff\r")
    with pytest.raises(DataError, match=r"mac\.txt:3: not valid UTF-8"):
        list(open_text_lines(path))


def test_cr_only_segmentation_fold_gives_every_sentence(tmp_path):
    fold = _write(tmp_path / "fold.txt", SENTS, end="\r")
    gold = _write(tmp_path / "gold.txt", ["他  说  。"], end="\r\n")
    splits = load_cws_splits([fold], gold, val_every=10)
    assert splits.n_read == 60 and len(splits.train) == 54 and splits.val[0] == SENTS[9].split()


def test_cr_only_ner_file_reads(tmp_path):
    lines = ["张 B-NAME", "三 E-NAME", "是 O", "", "李 S-NAME", "好 O"]
    path = _write(tmp_path / "train.char.bmes", lines, end="\r")
    sents = read_conll_chars(path, scheme_labels("BMES", ["NAME"]))
    assert [(first, "".join(chars)) for first, chars, _ in sents] == [(1, "张三是"), (5, "李好")]


def test_cr_only_triples_file_reads(tmp_path):
    rec = {
        "text": "《七里香》是周杰伦的歌",
        "spo_list": [{"subject": "七里香", "predicate": "歌手", "object": "周杰伦"}],
    }
    path = _write(tmp_path / "t.json", [json.dumps(rec, ensure_ascii=False)] * 3, end="\r")
    records, stats = read_triples(path)
    assert stats["records"] == 3 and [r.line for r in records] == [1, 2, 3]


def test_cr_only_sentiment_zip_member_reads(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("sentiment/sentiment.train.data", "好看\t1\r难看\t0\r一般般吧\t0\r".encode())
    path = tmp_path / "s.zip"
    path.write_bytes(buf.getvalue())
    assert read_sentiment(str(path), "train") == [("好看", 1), ("难看", 0), ("一般般吧", 0)]


# ----------------------------------------------------------------------------- triples not found in their text
def _records(n: int, n_missing: int) -> list[str]:
    out = []
    for i in range(n):
        obj = "人民出版社" if i >= n - n_missing else "故宫出版社"
        rec = {
            "text": f"《紫砂图典{i}》由故宫出版社出版",
            "spo_list": [{"subject": f"紫砂图典{i}", "predicate": "出版社", "object": obj}],
        }
        out.append(json.dumps(rec, ensure_ascii=False))
    return out


def _triples_dm(tmp_path: Path, train_lines: list[str], **kw) -> TripleDataModule:
    train = _write(tmp_path / "train.json", train_lines)
    dev = _write(tmp_path / "dev.json", _records(4, 0))
    dm = TripleDataModule(str(train), str(dev), SCHEMA, vocab_file=VOCAB, val_records=2, **kw)
    dm.setup("fit")
    return dm


def test_triples_mostly_not_found_are_refused_naming_file_and_first_line(tmp_path):
    with pytest.raises(DataError) as err:
        _triples_dm(tmp_path, _records(10, 9))
    assert str(err.value).startswith(
        f"{tmp_path / 'train.json'}:2: 9 of 10 gold triples of the train records (90%) have a subject or object "
        "that is not in their text (first: ('紫砂图典1', '出版社', '人民出版社')), more than "
        "data.max_triples_not_found_fraction=0.01; they would be dropped from training"
    )


def test_triples_not_found_under_the_threshold_are_dropped_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="bertlab.data.triples_datamodule"):
        dm = _triples_dm(tmp_path, _records(200, 2))  # 1 %: read
    assert dm.stats["train_triples_not_found"] == 2 and dm.stats["train_features"] == 198
    assert "2 not found" in caplog.text and "data.max_triples_not_found_fraction=0.01" in caplog.text
    with pytest.raises(DataError, match=r"train\.json:198: 3 of 200 gold triples"):
        _triples_dm(tmp_path, _records(200, 3))  # 1.5 %: refused
    dm = _triples_dm(tmp_path, _records(10, 9), max_triples_not_found_fraction=1.0)
    assert dm.stats["train_triples_not_found"] == 9


def test_triples_threshold_is_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.max_triples_not_found_fraction': must be in \[0, 1\]"):
        TripleDataModule("a", "b", SCHEMA, vocab_file=VOCAB, max_triples_not_found_fraction=1.5)


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_gold_file_as_raw_input_stops_with_one_line(tmp_path):
    train = _write(tmp_path / "train.txt", SENTS[:12])
    gold = _write(tmp_path / "gold.txt", ["我们  爱  北京  。", "明天  的  世纪  。"])
    words = _write(tmp_path / "words.txt", ["我们", "北京"])
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        "experiment=cws_crf",
        f"data.train_files=[{train}]",
        f"data.test_gold_file={gold}",
        f"data.test_raw_file={gold}",
        f"data.train_words_file={words}",
        "data.val_every=2",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp_path}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(errors) == 1 and "Traceback" not in res.stderr
    assert errors[0].startswith(f"bertlab: error: {gold}:1: expected raw (unsegmented) text"), errors
    assert "data.allow_segmented_raw=true" in errors[0]
    assert not (run_dir / "metrics.json").exists()
