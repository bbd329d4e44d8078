import zipfile

import pytest
from tests.conftest import ROOT

from bertlab.data.sentiment import read_sentiment
from bertlab.utils.errors import DataError

ZIP = str(ROOT / "data/sentiment/sentiment.zip")


def test_shipped_splits_have_the_documented_sizes():
    sizes = {s: len(read_sentiment(ZIP, s)) for s in ("train", "valid", "test")}
    assert sizes == {"train": 16883, "valid": 2111, "test": 2111}
    labels = {label for _, label in read_sentiment(ZIP, "valid")}
    assert labels == {0, 1}


def test_bad_lines_name_file_and_line(tmp_path):
    p = tmp_path / "s.data"
    p.write_text("好\t1\n坏\t2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"s.data:2: label must be 0 or 1"):
        read_sentiment(str(p))
    p.write_text("好 1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"s.data:1: expected"):
        read_sentiment(str(p))
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("sentiment/sentiment.train.data", "好\t1\n".encode() + b"\xff\t0\n")
    with pytest.raises(DataError, match=r"x.zip:sentiment/sentiment.train.data:2: not valid UTF-8"):
        read_sentiment(str(z), "train")
    with pytest.raises(DataError, match="no member"):
        read_sentiment(str(z), "test")
