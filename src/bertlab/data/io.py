"""Reading text files strictly: line numbers, UTF-8 checks and transparent decompression.

Every problem with an input file is reported as a :class:`~bertlab.utils.errors.DataError`
that names the path and, where it makes sense, the 1-based line number, so that a user can
open the file at the right place.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from bertlab.utils.errors import DataError

__all__ = ["open_binary", "open_text_lines", "iter_text_lines", "read_lines", "read_word_list"]

log = logging.getLogger(__name__)

_OPENERS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
_DECOMPRESS_ERRORS = (lzma.LZMAError, gzip.BadGzipFile, EOFError, OSError)
_BOM = "\ufeff"


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading, decompressing by suffix (``.xz``, ``.gz``, ``.bz2``).

    Raises:
        DataError: the file is missing, is a directory or cannot be opened.
    """
    p = Path(path)
    opener = _OPENERS.get(p.suffix.lower(), open)
    try:
        return opener(p, "rb")  # type: ignore[operator]
    except FileNotFoundError:
        raise DataError(p, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(p, None, "is a directory, not a file") from None
    except OSError as err:
        raise DataError(p, None, f"cannot open: {err.strerror or err}") from None


def open_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for every line of a UTF-8 text file.

    * Line numbers are 1-based; the line is given without its line ending. Line endings
      are universal newlines, as in Python's text mode and in editors: ``"\\n"``,
      ``"\\r\\n"`` and a lone ``"\\r"`` (old Mac files) all end a line. A file with lone
      ``"\\r"`` endings is read line by line (not as one huge line) and the fact is stated
      at WARNING with the count and the first line (:func:`iter_text_lines`).
    * Files ending in ``.xz``, ``.gz`` or ``.bz2`` are decompressed on the fly.
    * Decoding is strict and done line by line, so a byte that is not valid UTF-8 raises
      :class:`DataError` with the exact line number. A UTF-8 byte-order mark at the start
      of the file is dropped.
    * A final line without a line ending is yielded as well; an empty file yields nothing
      (callers decide whether that is an error).

    Raises:
        DataError: missing file, non-UTF-8 byte, or a corrupt compressed stream.
    """
    p = Path(path)
    lineno = 0
    with open_binary(p) as fh:
        try:
            for lineno, line in iter_text_lines(fh, p):  # noqa: B007 (used in except)
                yield lineno, line
        except DataError:
            raise
        except _DECOMPRESS_ERRORS as err:
            raise DataError(p, lineno + 1, f"cannot read (corrupt or truncated compressed file?): {err}") from None


def iter_text_lines(chunks: Iterable[bytes], where: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` of the ``"\\n"``-terminated byte lines of an open binary file
    (``where`` names it in messages), decoded strictly as UTF-8, with universal newlines
    (see :func:`open_text_lines`, which opens a path and calls this; the sentiment zip's
    members are read with it too).

    Lone ``"\\r"`` line endings are counted and stated once at WARNING when the file has
    been read to its end: ``<file>: N lone CR line endings (old Mac style, first at line L)
    read as line breaks``. There is no threshold: this reading is the standard one
    (Python's text mode), not a repair that loses anything.
    """
    lineno = 0
    lone_cr, first_cr = 0, 0
    for chunk in chunks:
        n_cr = chunk.count(b"\r") - chunk.endswith(b"\r\n")
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        parts = chunk.split(b"\r")
        if n_cr:
            lone_cr += n_cr
            first_cr = first_cr or lineno + 1
        for raw in parts:
            lineno += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = raw[err.start : err.start + 1].hex()
                raise DataError(
                    where, lineno, f"not valid UTF-8 (byte 0x{bad} at byte offset {err.start} of the line)"
                ) from None
            if lineno == 1 and line.startswith(_BOM):
                line = line[1:]
            yield lineno, line
    if lone_cr:
        log.warning(
            "%s: %d lone CR line ending%s (old Mac style, first at line %d) read as line breaks (universal newlines)",
            where,
            lone_cr,
            "s" if lone_cr > 1 else "",
            first_cr,
        )


def read_lines(path: str | os.PathLike) -> list[str]:
    """All lines of a text file (see :func:`open_text_lines`), blank lines included."""
    return [line for _, line in open_text_lines(path)]


def read_word_list(path: str | os.PathLike) -> set[str]:
    """Read a word list, one word a line (e.g. the SIGHAN ``*_training_words.utf8``).

    Surrounding whitespace is stripped and blank lines are skipped.

    Raises:
        DataError: unreadable file, a line holding more than one word, or no word at all.
    """
    words: set[str] = set()
    for lineno, line in open_text_lines(path):
        word = line.strip()
        if not word:
            continue
        if len(word.split()) != 1:
            raise DataError(path, lineno, f"expected one word a line, got {line!r}")
        words.add(word)
    if not words:
        raise DataError(path, None, "word list is empty")
    return words
