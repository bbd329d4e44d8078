"""Format checks: does a readable file hold the format its reader expects?

A file that reads without error can still be of another format: a CoNLL NER file, JSON
lines or POS-tagged text (``迈向/v 充满/v``) given as word-segmentation data, a raw
(unsegmented) file given as the gold test file, a segmented file given as the raw test
input (its blanks would hand the model the word boundaries). Readers classify every line
they read with a check of this module and hand the result to a :class:`FormatGuard`, which
stops the reading with one :class:`DataError` naming the file, the first wrong line and
what was expected vs found:

* at once when the first ``early_lines`` non-blank lines are mostly wrong (the whole file is
  of another format: no need to read it to the end);
* at the end of the file when more than ``max_bad_fraction`` (1 %) of its non-blank lines
  look wrong (real corpora hold a few odd lines: People's Daily tables of numbers look
  unsegmented, 0.3 % of a fold at most), listing the first few.
"""

from __future__ import annotations

import json
import os
import re

from bertlab.utils.errors import DataError

__all__ = ["FormatGuard", "segmented_line_problem", "raw_line_problem", "MAX_BAD_FRACTION"]

#: more than this fraction of wrong-looking non-blank lines stops the reading
MAX_BAD_FRACTION = 0.01

_WORD_SEP = re.compile(r"[ \t\f\v]+")
#: a CoNLL tag column: O, a prefixed tag (B-PER, S-NAME, I-LOC) or a bare BMES/BIO letter
_TAG = re.compile(r"(?:O|[BIMESbimes](?:[-_]\S+)?)")
#: a line of JSON (a record on one line, or a line of a pretty-printed document)
_JSON_START = re.compile(r'\s*(?:\{|\[\s*\{|\[\s*$|[\]\}],?\s*$|"[^"]*"\s*:)')
#: a line is "unsegmented" when its mean token length exceeds this and it has this many characters
_UNSEGMENTED_MEAN_LEN = 6.0
_UNSEGMENTED_MIN_CHARS = 8
#: ... or when it is one "word" of this many characters (a short raw sentence)
_UNSEGMENTED_ONE_WORD = 5
#: a POS-tagged word: ``迈向/v``, ``[中央/n``, ``电台/n]nt`` (People's Daily), ``北京/NR`` (CTB)
_POS_TAGGED = re.compile(r"[^/\s]+/[A-Za-z]{1,4}(?:\][A-Za-z]{0,4})?")
#: CJK characters: radicals, CJK punctuation, kana, ideographs (+ ext. A, compatibility,
#: ext. B-F), full-width forms
_CJK = "[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0002fa1f]"
#: blanks between two CJK characters: word boundaries marked in what should be raw text
_CJK_BLANK_CJK = re.compile(f"{_CJK}[ \t]+{_CJK}")


def _json_kind(line: str) -> str | None:
    if not _JSON_START.match(line):
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return "a line of a JSON document"
    return f"a JSON {type(obj).__name__}" if isinstance(obj, (dict, list)) else None


def segmented_line_problem(line: str) -> str | None:
    """What is wrong with ``line`` as a line of a segmented file (words separated by blanks),
    or None when it looks right. Looks for: JSON, a tab-separated column, a CoNLL
    ``char TAG`` line, POS-tagged words (more than half the words ``word/TAG``, TAG 1-4 ASCII
    letters: ``迈向/v``; People's Daily's ``以假充真/%`` marker is not a tag), and a line
    without word separators (raw text: one "word" of 5+ characters, or 8+ characters in
    words averaging more than 6)."""
    text = line.strip()
    if not text:
        return None
    kind = _json_kind(text)
    if kind is not None:
        return f"{kind}: {text[:40]!r}"
    if "\t" in text:
        return f"a tab-separated column: {text[:40]!r}"
    tokens = [t for t in _WORD_SEP.split(text) if t]
    if len(tokens) == 2 and len(tokens[0]) == 1 and _TAG.fullmatch(tokens[1]):
        return f"a CoNLL 'char TAG' line: {text[:40]!r}"
    tagged = sum(1 for t in tokens if _POS_TAGGED.fullmatch(t))
    if 2 * tagged > len(tokens):
        return f"POS-tagged words ('word/TAG', {tagged} of {len(tokens)} words): {text[:40]!r}"
    chars = sum(len(t) for t in tokens)
    one_long_word = len(tokens) == 1 and chars >= _UNSEGMENTED_ONE_WORD
    if one_long_word or (chars >= _UNSEGMENTED_MIN_CHARS and chars / len(tokens) > _UNSEGMENTED_MEAN_LEN):
        return f"unsegmented text ({chars} characters in {len(tokens)} word{'s' if len(tokens) > 1 else ''})"
    return None


def raw_line_problem(line: str) -> str | None:
    """What is wrong with ``line`` as a line of raw (unsegmented) input to a segmenter, or
    None when it looks right: a blank between two CJK characters is a word boundary
    already marked (a segmented file given as the raw test input). The official PKU raw
    test file has none; its gold file has one on 1,940 of its 1,944 sentences."""
    m = _CJK_BLANK_CJK.search(line)
    if m is None:
        return None
    return f"segmented text (a blank between Chinese characters: {m.group()!r} in {line.strip()[:40]!r})"


class FormatGuard:
    """Counts the lines of one file that do not look like ``expected``; raises a DataError
    when the file as a whole is of another format (see the module docstring).

    Usage: ``guard.check(lineno, problem)`` for every non-blank line (``problem`` None when
    the line looks right), then ``guard.finish()`` at the end of the file."""

    def __init__(
        self,
        path: str | os.PathLike,
        expected: str,
        max_bad_fraction: float = MAX_BAD_FRACTION,
        early_lines: int = 20,
        show: int = 3,
        hint: str = "wrong file?",
    ):
        self.path = path
        self.expected = expected
        self.max_bad_fraction = max_bad_fraction
        self.early_lines = early_lines
        self.show = show
        self.hint = hint
        self.lines = 0
        self.bad: list[tuple[int, str]] = []

    def check(self, lineno: int, problem: str | None) -> None:
        self.lines += 1
        if problem is not None:
            self.bad.append((lineno, problem))
        if self.lines == self.early_lines and len(self.bad) > self.early_lines // 2:
            self._raise(f"{len(self.bad)} of the first {self.lines} lines")

    def finish(self) -> None:
        if self.bad and len(self.bad) > self.max_bad_fraction * self.lines:
            self._raise(f"{len(self.bad)} of {self.lines} lines, more than {self.max_bad_fraction:.0%}")

    def _raise(self, count: str) -> None:
        lineno, found = self.bad[0]
        more = ", ".join(str(n) for n, _ in self.bad[1 : self.show + 1])
        also = f"; also lines {more}" if more else ""
        raise DataError(
            self.path, lineno, f"expected {self.expected}, found {found} ({count} look wrong{also}); {self.hint}"
        )
