"""Format checks of the readers (issue 21): a readable file of another format stops with one
line naming the file, its first wrong line and what was expected vs found; a few odd lines
pass; every shipped data file passes."""

from __future__ import annotations

import glob
import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from bertlab.data.cws import load_cws_splits, read_raw_lines, read_segmented_file
from bertlab.data.format_checks import FormatGuard, raw_line_problem, segmented_line_problem
from bertlab.data.mrc import read_cmrc, read_native
from bertlab.utils.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
SEG = ["迈向  充满  希望  的  新  世纪  。", "中国  人民  爱  和平  。", "我们  在  北京  工作  。"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("张 B-NAME", "a CoNLL 'char TAG' line"),
        ("是 O", "a CoNLL 'char TAG' line"),
        ('{"text": "北京", "label": 1}', "a JSON dict"),
        ('  "context": "北京是中国的首都",', "a line of a JSON document"),
        ("这部电影真好看\t1", "a tab-separated column"),
        ("共同创造美好的新世纪——二○○一年新年贺词", "unsegmented text"),
        ("我们爱北京。", "unsegmented text (6 characters in 1 word)"),
        ("迈向/v  充满/v  希望/n  的/u", "POS-tagged words ('word/TAG', 4 of 4 words)"),
        ("[中央/n 人民/n 广播/vn 电台/n]nt", "POS-tagged words"),
    ],
)
def test_a_line_of_another_format_is_recognised(line, found):
    assert found in segmented_line_problem(line)


@pytest.mark.parametrize(
    "line", [*SEG, "[北京  石景山  发电  总厂]", "图片新闻", "１２５８．４９  ３１．７８", "", "TCP/IP  协议  。"]
)
def test_segmented_lines_pass(line):
    assert segmented_line_problem(line) is None


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("迈向  充满  希望", "segmented text (a blank between Chinese characters: '向  充'"),
        ("（  二○○○年  ）", "segmented text"),
        ("我们使用Windows 95。", None),
        ("北京 2008年", None),
        ("共同创造美好的新世纪。", None),
    ],
)
def test_a_segmented_line_as_raw_input_is_recognised(line, found):
    problem = raw_line_problem(line)
    assert problem is None if found is None else found in problem


def test_conll_file_as_segmentation_stops_at_once_naming_file_and_line(tmp_path):
    path = _write(tmp_path / "ner.bmes", [f"{c} O" for c in "北京是中国的首都我们在上海工作啊呀哦"] * 3)
    with pytest.raises(DataError, match=r"ner\.bmes:1: expected segmented text .* found a CoNLL 'char TAG' line"):
        read_segmented_file(path)


def test_raw_file_as_gold_stops(tmp_path):
    train = _write(tmp_path / "train.txt", SEG * 5)
    raw = _write(tmp_path / "raw.txt", [s.replace(" ", "") + "后面还有一些字" for s in SEG])
    with pytest.raises(DataError, match=r"raw\.txt:1: expected segmented text .* found unsegmented text"):
        load_cws_splits([train], raw)


def test_jsonl_as_training_fold_stops(tmp_path):
    gold = _write(tmp_path / "gold.txt", SEG)
    jsonl = _write(tmp_path / "t.json", [json.dumps({"text": s}, ensure_ascii=False) for s in SEG * 5])
    with pytest.raises(DataError, match=r"t\.json:1: .*found a JSON dict"):
        load_cws_splits([jsonl], gold)


def test_a_few_odd_lines_pass_more_than_one_percent_stop_listing_the_first(tmp_path):
    odd = "这是一个没有分词的很长的句子啊"
    ok = _write(tmp_path / "ok.txt", SEG * 100 + [odd])  # 1 of 301 lines
    assert len(read_segmented_file(ok)) == 301
    lines = SEG * 100
    for i in (40, 90, 150, 200):  # 4 of 300 lines > 1 %
        lines[i] = odd
    bad = _write(tmp_path / "bad.txt", lines)
    with pytest.raises(
        DataError, match=r"bad\.txt:41: .*4 of 300 lines, more than 1% look wrong; also lines 91, 151, 201"
    ):
        read_segmented_file(bad)


def test_guard_early_stop_after_the_first_lines(tmp_path):
    guard = FormatGuard(tmp_path / "x", "something", early_lines=4)
    guard.check(1, "bad")
    guard.check(2, None)
    guard.check(3, "bad")
    with pytest.raises(DataError, match=r"x:1: expected something, found bad \(3 of the first 4 lines"):
        guard.check(4, "bad")


def _cmrc(tmp_path: Path, answer: dict) -> Path:
    data = {
        "data": [
            {
                "paragraphs": [
                    {
                        "id": "p1",
                        "context": "北京是中国的首都。北京很大。",
                        "qas": [{"id": "q1", "question": "首都？", "answers": [answer]}],
                    }
                ]
            }
        ]
    }
    path = tmp_path / "cmrc.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_cmrc_answer_start_must_be_an_integer(tmp_path):
    with pytest.raises(DataError, match=r"cmrc\.json: question 'q1': expected a string 'text' and an integer"):
        read_cmrc(str(_cmrc(tmp_path, {"text": "北京", "answer_start": "zero"})))


def test_cmrc_repaired_answer_starts_are_a_warning_with_the_count(tmp_path, caplog):
    stats: Counter = Counter()
    with caplog.at_level(logging.WARNING, logger="bertlab.data.mrc"):
        read_cmrc(str(_cmrc(tmp_path, {"text": "北京很大", "answer_start": 3})), stats=stats)
    assert stats["answer_starts_repaired"] == 1
    warn = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warn and "1 answer_start(s)" in warn[0].getMessage()


def test_native_mrc_file_of_another_format_stops_even_when_skipping_bad_records(tmp_path):
    path = tmp_path / "triples.json"
    path.write_text(
        "".join(json.dumps({"text": f"第{i}句", "spo_list": []}) + "\n" for i in range(5)), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"triples\.json:1: record 1: expected a record with 'question' and 'passages'"):
        read_native(str(path), Counter(), skip_bad_records=True)


@pytest.mark.parametrize("root", [ROOT / "data", Path("/work/shared/data")])
def test_every_shipped_file_passes_the_format_checks(root):
    if not root.is_dir():
        pytest.skip(f"{root} not here")
    from bertlab.data.ner import load_ner_splits
    from bertlab.data.sentiment import read_sentiment
    from bertlab.data.triples import read_schema, read_triples

    folds = sorted(glob.glob(f"{root}/cws/peoples_daily_1998/cv-*"))
    gold = glob.glob(f"{root}/cws/pku_sighan2005/pku_test_gold.utf8*")[0]
    assert len(load_cws_splits(folds, gold).train) > 30000
    assert len(read_raw_lines(glob.glob(f"{root}/cws/pku_sighan2005/pku_test.utf8*")[0])) == 1945
    for name in ("resume", "peoples_daily"):
        load_ner_splits(name, root)
    schema = read_schema(glob.glob(f"{root}/triples/lic2019/all_50_schemas*")[0])
    for f in glob.glob(f"{root}/triples/lic2019/*_data.json*"):
        read_triples(f, schema)
    for f in glob.glob(f"{root}/mrc/cmrc2018/*"):
        assert read_cmrc(f)["train"]
    for f in glob.glob(f"{root}/mrc/webqa_sogouqa_sample/*"):
        assert read_native(f, Counter(), skip_bad_records=True)
    for split in ("train", "valid", "test"):
        assert read_sentiment(str(root / "sentiment" / "sentiment.zip"), split)
