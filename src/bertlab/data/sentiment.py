"""The sentiment corpus of the ALBERT and conditional-LN posts (data/sentiment/sentiment.zip).

Inside the zip: ``sentiment/sentiment.{train,valid,test}.data``, one ``text<TAB>label`` a
line, label 0 (negative) or 1 (positive). ``read_sentiment`` reads one split straight from
the zip (or from a plain / compressed text file of the same format) and reports bad lines
as :class:`DataError` naming the file (``zip:member``) and the 1-based line.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator

from bertlab.data.io import iter_text_lines, open_text_lines
from bertlab.utils.errors import DataError

__all__ = ["SPLITS", "read_sentiment", "iter_lines"]

SPLITS = ("train", "valid", "test")


def iter_lines(path: str, split: str) -> Iterator[tuple[str, int, str]]:
    """``(where, line_number, line)`` of a split: ``path`` is the zip or a text file."""
    if not str(path).endswith(".zip"):
        for num, line in open_text_lines(path):
            yield str(path), num, line
        return
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not os.path.isfile(path):
        raise DataError(path, None, "file not found")
    member = f"sentiment/sentiment.{split}.data"
    where = f"{path}:{member}"
    try:
        with zipfile.ZipFile(path) as zf:
            raw = zf.read(member)
    except KeyError:
        raise DataError(path, None, f"the zip has no member {member}") from None
    except zipfile.BadZipFile as err:
        raise DataError(path, None, f"not a readable zip file ({err})") from None
    for num, text in iter_text_lines(io.BytesIO(raw), where):
        yield where, num, text


def read_sentiment(path: str, split: str = "train") -> list[tuple[str, int]]:
    """``[(text, label)]`` of one split, in file order. Every line must be ``text<TAB>0|1``
    with a non-empty text; anything else is a DataError naming file and line."""
    out: list[tuple[str, int]] = []
    where = str(path)
    for where, num, line in iter_lines(path, split):
        text, tab, label = line.rpartition("\t")
        if not tab:
            raise DataError(where, num, "expected 'text<TAB>label', found no tab")
        if label.strip() not in ("0", "1"):
            raise DataError(where, num, f"label must be 0 or 1, got {label!r}")
        if not text.strip():
            raise DataError(where, num, "empty text")
        out.append((text, int(label)))
    if not out:
        raise DataError(where, None, "no examples (empty file)")
    return out
