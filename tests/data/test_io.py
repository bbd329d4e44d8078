"""Strict text reading: line numbers, UTF-8 errors, compression, word lists."""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest

from bertlab.data.io import open_text_lines, read_lines, read_word_list
from bertlab.utils.errors import DataError


def test_lines_numbered_and_line_ends_stripped(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("一\r\n二\n\r\n最后".encode())
    assert list(open_text_lines(p)) == [(1, "一"), (2, "二"), (3, ""), (4, "最后")]


def test_empty_file_yields_nothing(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    assert list(open_text_lines(p)) == []


def test_bom_dropped(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes("\ufeff你好\n".encode())
    assert read_lines(p) == ["你好"]


def test_non_utf8_byte_reports_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes("好\n好\n".encode() + b"ok \xff here\n" + "好\n".encode())
    with pytest.raises(DataError) as info:
        list(open_text_lines(p))
    err = info.value
    assert err.line == 3 and err.path == str(p)
    assert str(err).startswith(f"{p}:3: not valid UTF-8")
    assert "0xff" in str(err)


def test_gbk_text_is_rejected_at_its_line(tmp_path):
    p = tmp_path / "gbk.txt"
    p.write_bytes("第一行\n".encode() + "中文".encode("gbk") + b"\n")
    with pytest.raises(DataError, match=r":2: not valid UTF-8"):
        list(open_text_lines(p))


def test_missing_file(tmp_path):
    p = tmp_path / "nope.txt"
    with pytest.raises(DataError) as info:
        list(open_text_lines(p))
    assert info.value.line is None
    assert str(info.value) == f"{p}: file not found"


@pytest.mark.parametrize(
    ("suffix", "compress"), [(".xz", lzma.compress), (".gz", gzip.compress), (".bz2", bz2.compress)]
)
def test_compressed_reading(tmp_path, suffix, compress):
    p = tmp_path / f"c.txt{suffix}"
    p.write_bytes(compress("甲  乙\r\n丙\n".encode()))
    assert list(open_text_lines(p)) == [(1, "甲  乙"), (2, "丙")]


def test_non_utf8_inside_xz(tmp_path):
    p = tmp_path / "bad.txt.xz"
    p.write_bytes(lzma.compress(b"fine\n\xc3\x28\n"))
    with pytest.raises(DataError, match=r"bad\.txt\.xz:2: not valid UTF-8"):
        list(open_text_lines(p))


def test_corrupt_xz(tmp_path):
    p = tmp_path / "corrupt.txt.xz"
    p.write_bytes(b"this is not xz data at all")
    with pytest.raises(DataError, match="corrupt"):
        list(open_text_lines(p))


def test_read_word_list(tmp_path):
    p = tmp_path / "words.utf8"
    p.write_bytes("北京\n\n天安门 \r\n北京\n".encode())
    assert read_word_list(p) == {"北京", "天安门"}


def test_read_word_list_rejects_two_words(tmp_path):
    p = tmp_path / "words.utf8"
    p.write_bytes("北京\n天安 门\n".encode())
    with pytest.raises(DataError, match=r":2: expected one word a line"):
        read_word_list(p)


def test_read_word_list_rejects_empty(tmp_path):
    p = tmp_path / "words.utf8"
    p.write_bytes(b"\n\n")
    with pytest.raises(DataError, match="empty"):
        read_word_list(p)
