"""Chinese word segmentation (CWS) data: reading, cleaning, BMES tags, splitting, splits.

Pure Python (no torch). The corpora are described in ``data/README.md``:

* People's Daily 1998 (Jan+Feb), five folds ``cv-{1..5}-filter_test.txt``, one sentence a
  line, words split by one space, with compound-entity brackets (``[北京 石景山 发电 总厂]``)
  and a stray ``/%`` marker after a few words (``以假充真/%``) that :func:`clean_pd_word`
  strips.
* The official SIGHAN-2005 PKU test set: raw input (one sentence a line) and gold
  segmentation (words split by two spaces), both with CRLF line ends.

Tags are BMES with the ids used by bert4keras' CWS example: 0 = s (single-character word),
1 = b (begin), 2 = m (middle), 3 = e (end). A word starts wherever the tag is s or b.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bertlab.data.format_checks import FormatGuard, raw_line_problem, segmented_line_problem
from bertlab.data.io import open_text_lines
from bertlab.utils.errors import DataError

__all__ = [
    "TAGS",
    "TAG_TO_ID",
    "S",
    "B",
    "M",
    "E",
    "PUNCTUATION",
    "CwsSplits",
    "clean_pd_word",
    "parse_segmented_line",
    "read_segmented_file",
    "segmented_lines",
    "read_raw_lines",
    "words_to_tags",
    "tags_to_words",
    "words_from_tags",
    "split_text",
    "split_words",
    "load_cws_splits",
    "write_segmentation",
    "fold_width",
]

log = logging.getLogger(__name__)

TAGS: tuple[str, ...] = ("s", "b", "m", "e")
TAG_TO_ID: dict[str, int] = {t: i for i, t in enumerate(TAGS)}
S, B, M, E = 0, 1, 2, 3

#: Characters after which a long sentence is preferably cut (sentence and clause punctuation,
#: closing quotes and brackets, full width and ASCII).
PUNCTUATION: frozenset[str] = frozenset("。！？；，、：…—”’」』》）】〕.!?;,:)]")

# People's Daily markers: "[" opening a compound entity, "]" closing it, and a stray "/%"
# (or bare "/") annotation suffix. Only these ASCII forms are touched: full-width ％ and ／
# (as in "５０％", "１／３", "元／平方米") are real text and stay.
_PD_LEAD = re.compile(r"^\[+")
_PD_TRAIL = re.compile(r"(?:\]|/%|/)+$")
# Words are separated by runs of ASCII blanks only, so that an ideographic space (U+3000)
# would stay a character (neither corpus contains one).
_WORD_SEP = re.compile(r"[ \t\f\v]+")


# --------------------------------------------------------------------------- reading
def clean_pd_word(word: str) -> str:
    """Strip the People's Daily annotation markers from one word.

    Removes leading ASCII ``[`` (compound-entity start) and a trailing run of ASCII ``]``
    (entity end), ``/%`` or ``/`` (stray annotation suffix): ``"[北京" -> "北京"``,
    ``"总厂]" -> "总厂"``, ``"以假充真/%" -> "以假充真"``. Full-width ``％``/``／`` and ASCII
    characters anywhere else are left alone. The result may be empty (a lone marker); the
    caller reports that.
    """
    return _PD_TRAIL.sub("", _PD_LEAD.sub("", word))


def parse_segmented_line(line: str, path: str | os.PathLike, lineno: int, clean: bool = False) -> list[str]:
    """Split a segmented line into words on runs of blanks (one-space PD, two-space PKU).

    Args:
        line: the line, without its line ending.
        path, lineno: where it comes from, for error messages.
        clean: apply :func:`clean_pd_word` to every word (People's Daily files).

    Returns:
        The words; ``[]`` for a blank line (callers decide what a blank line means).

    Raises:
        DataError: a word that is empty after cleaning (e.g. a lone ``[`` or ``/%``).
    """
    tokens = [t for t in _WORD_SEP.split(line) if t]
    if not clean:
        return tokens
    words = []
    for token in tokens:
        word = clean_pd_word(token)
        if not word:
            raise DataError(path, lineno, f"word {token!r} is empty once its markers are stripped")
        words.append(word)
    return words


#: what a segmented file must look like (the format checks' "expected ...")
SEGMENTED = "segmented text (one sentence a line, words separated by spaces)"


def segmented_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``open_text_lines`` of a segmented file with its format checked as it goes
    (:mod:`bertlab.data.format_checks`): a file of another format (CoNLL tags, JSON, a tab
    column, unsegmented raw text) stops with a DataError naming the file and its first wrong
    line; a few odd lines (under 1 %) pass."""
    guard = FormatGuard(path, SEGMENTED)
    for lineno, line in open_text_lines(path):
        if line.strip():
            guard.check(lineno, segmented_line_problem(line))
        yield lineno, line
    guard.finish()


def read_segmented_file(path: str | os.PathLike, clean: bool = False) -> list[tuple[int, list[str]]]:
    """Read a segmented file as ``(line_number, words)`` pairs, blank lines included as ``[]``;
    the format is checked (:func:`segmented_lines`)."""
    return [(lineno, parse_segmented_line(line, path, lineno, clean)) for lineno, line in segmented_lines(path)]


#: what a raw file must look like
RAW = "raw (unsegmented) text, one sentence a line"
#: the switch that lets a segmented file be the raw test input
ALLOW_SEGMENTED_RAW = "data.allow_segmented_raw"


def read_raw_lines(path: str | os.PathLike, allow_segmented: bool = False) -> list[str]:
    """Read the raw (unsegmented) test input: every line kept, blank ones included.

    Line endings are removed, nothing else. The official PKU test file gives 1,945 lines:
    1,944 sentences and a final blank line.

    Its format is checked (:mod:`bertlab.data.format_checks`): a blank between two Chinese
    characters is a word boundary the model would be handed (every blank ends a predicted
    word), so a segmented file as raw input (e.g. the gold file: F1 0.84 where the same
    model scores 0.24 on the raw file) stops with a DataError naming the file and its first
    such line when more than 1 % of the lines have one. ``allow_segmented=True``
    (``data.allow_segmented_raw``) reads it anyway, stating the count at WARNING.
    """
    hint = f"wrong file? (its blanks would hand the model the word boundaries; {ALLOW_SEGMENTED_RAW}=true reads it)"
    guard = FormatGuard(path, RAW, hint=hint)
    lines, marked = [], 0
    for lineno, line in open_text_lines(path):
        if line.strip():
            problem = raw_line_problem(line)
            marked += problem is not None
            if not allow_segmented:
                guard.check(lineno, problem)
        lines.append(line)
    if not allow_segmented:
        guard.finish()
    if marked:
        log.warning(
            "%s: %d of %d lines hold a blank between Chinese characters: the model is given those word boundaries (%s)",
            path,
            marked,
            len(lines),
            f"{ALLOW_SEGMENTED_RAW}=true" if allow_segmented else "under 1%, read",
        )
    return lines


# --------------------------------------------------------------------------- tags
def words_to_tags(words: Sequence[str]) -> list[int]:
    """BMES tag ids, one per character: s for a one-character word, else b m* e.

    Raises:
        ValueError: an empty word.
    """
    tags: list[int] = []
    for i, word in enumerate(words):
        n = len(word)
        if n == 0:
            raise ValueError(f"word {i} is empty")
        if n == 1:
            tags.append(S)
        else:
            tags.append(B)
            tags.extend([M] * (n - 2))
            tags.append(E)
    return tags


def tags_to_words(text: str, tags: Sequence[int]) -> list[str]:
    """Cut ``text`` into words from one tag id per character.

    A new word starts at position 0 and wherever the tag is s or b; m and e continue the
    current word. Any sequence of valid tag ids is accepted (a model may produce "b b" or
    "s m"), so ``"".join(tags_to_words(text, tags)) == text`` always.

    Raises:
        ValueError: ``len(tags) != len(text)`` or a tag id outside 0..3.
    """
    if len(tags) != len(text):
        raise ValueError(f"{len(tags)} tags for a text of {len(text)} characters")
    words: list[str] = []
    start = 0
    for i, tag in enumerate(tags):
        tag = int(tag)
        if not 0 <= tag < len(TAGS):
            raise ValueError(f"tag id {tag} at position {i} is not one of 0..{len(TAGS) - 1}")
        if i > 0 and tag in (S, B):
            words.append(text[start:i])
            start = i
    if text:
        words.append(text[start:])
    return words


def words_from_tags(text: str, char_tags: Sequence[int | None]) -> list[str]:
    """Words of ``text`` given one tag per character (None = whitespace, always a boundary)."""
    words: list[str] = []
    cur = ""
    for ch, tag in zip(text, char_tags):
        if tag is None or ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
            continue
        if cur and tag in (0, 1):  # s or b starts a new word
            words.append(cur)
            cur = ""
        cur += ch
    if cur:
        words.append(cur)
    return words


# --------------------------------------------------------------------------- splitting
def _check_max_len(max_len: int) -> None:
    if int(max_len) != max_len or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")


def _can_cut_after(text: str, i: int) -> bool:
    """True if a cut between ``text[i]`` and ``text[i + 1]`` follows punctuation.

    A run of the same mark (``……``, ``——``) is not cut in the middle.
    """
    return text[i] in PUNCTUATION and (i + 1 >= len(text) or text[i + 1] != text[i])


def split_text(text: str, max_len: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_len`` characters for a model.

    Greedy from the left: each piece is as long as possible, ending after the last
    punctuation mark (:data:`PUNCTUATION`) that fits; with no punctuation in the window the
    piece is cut hard at ``max_len``. ``"".join(pieces) == text`` always; ``""`` gives ``[]``.
    """
    _check_max_len(max_len)
    pieces: list[str] = []
    start, n = 0, len(text)
    while n - start > max_len:
        end = start + max_len  # hard cut by default
        for i in range(start + max_len - 1, start - 1, -1):
            if _can_cut_after(text, i):
                end = i + 1
                break
        pieces.append(text[start:end])
        start = end
    if start < n:
        pieces.append(text[start:])
    return pieces


def _is_punct_word(word: str) -> bool:
    return bool(word) and all(ch in PUNCTUATION for ch in word)


def split_words(words: Sequence[str], max_len: int) -> list[list[str]]:
    """Cut a segmented sentence into pieces of at most ``max_len`` characters.

    Cuts fall on word boundaries only: greedy from the left, each piece ends after the last
    punctuation word (all its characters in :data:`PUNCTUATION`) that fits, else at the last
    word boundary that fits. A single word longer than ``max_len`` (never seen in the
    corpora for any realistic ``max_len``) is cut into chunks of ``max_len`` characters,
    each its own piece and its own "word", which changes its gold tags; so
    ``"".join(w for p in pieces for w in p) == "".join(words)`` always, and the flattened
    word list equals ``words`` whenever no word is longer than ``max_len``.
    """
    _check_max_len(max_len)
    pieces: list[list[str]] = []
    cur: list[str] = []
    cur_len = 0
    for word in words:
        if len(word) > max_len:
            if cur:
                pieces.append(cur)
                cur, cur_len = [], 0
            pieces.extend([word[i : i + max_len]] for i in range(0, len(word), max_len))
            continue
        while cur and cur_len + len(word) > max_len:
            cut = len(cur)
            for k in range(len(cur) - 1, 0, -1):  # cut after cur[k-1] when it is punctuation
                if _is_punct_word(cur[k - 1]):
                    cut = k
                    break
            pieces.append(cur[:cut])
            cur = cur[cut:]
            cur_len = sum(len(w) for w in cur)
        cur.append(word)
        cur_len += len(word)
    if cur:
        pieces.append(cur)
    return pieces


# --------------------------------------------------------------------------- splits
def fold_width(text: str) -> str:
    """Map full-width ASCII variants (U+FF01..U+FF5E) and U+3000 to their ASCII forms.

    Used only to compare sentences: the People's Daily folds write digits and Latin letters
    full width (``１９９８``) while the PKU test set writes them in ASCII (``1998``).
    """
    return text.translate(_FOLD_TABLE)


_FOLD_TABLE = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


@dataclass
class CwsSplits:
    """Train / validation / test sentences (lists of words) and what the loader dropped."""

    train: list[list[str]]
    val: list[list[str]]
    test: list[list[str]]
    n_read: int = 0  #: non-blank People's Daily lines read, all folds
    n_blank_skipped: int = 0  #: blank People's Daily lines skipped
    dropped_duplicates: int = 0  #: lines equal to a line of an earlier fold
    dropped_test_overlap: int = 0  #: lines whose text equals a PKU test sentence
    dropped_val_overlap: int = 0  #: would-be training lines whose text equals a validation sentence
    sources: dict[str, str] = field(default_factory=dict)

    def stats(self) -> dict[str, int]:
        """Sentence, word and character counts per split, plus the dropped counts."""
        out: dict[str, int] = {}
        for name in ("train", "val", "test"):
            sents = getattr(self, name)
            out[f"{name}_sentences"] = sum(1 for s in sents if s)
            out[f"{name}_words"] = sum(len(s) for s in sents)
            out[f"{name}_chars"] = sum(len(w) for s in sents for w in s)
        out["test_lines"] = len(self.test)
        for name in ("n_read", "n_blank_skipped", "dropped_duplicates", "dropped_test_overlap", "dropped_val_overlap"):
            out[name] = getattr(self, name)
        return out


def load_cws_splits(
    train_files: Sequence[str | os.PathLike],
    test_gold_file: str | os.PathLike,
    val_file_index: int = -1,
    val_every: int = 10,
) -> CwsSplits:
    """Build the CWS train / validation / test splits, deterministically.

    Rules, applied in this order:

    1. Read every People's Daily fold in ``train_files`` (in the given order), clean its
       words with :func:`clean_pd_word`, skip blank lines.
    2. Duplicates across folds: a line whose word sequence equals a line of an *earlier*
       fold is dropped (the first occurrence is kept). Repeats inside one fold (recurring
       headlines like "图片新闻") are kept at this step.
    3. Test overlap: a line whose text (words joined without spaces, full/half width folded
       with :func:`fold_width`) equals a sentence of the PKU gold file is dropped, from
       training and validation alike.
    4. Validation: the surviving lines of fold ``train_files[val_file_index]`` (the last one
       by default) whose 1-based line number in their file is divisible by ``val_every``.
    5. Training: every other surviving line, except those whose text equals a validation
       sentence (so no validation sentence is ever seen in training).
    6. Test: the PKU gold file, every line kept in order; a blank line is an empty list,
       so predictions can keep one output line per input line.

    Raises:
        DataError: unreadable or malformed input files (see :func:`parse_segmented_line`),
            an empty fold, or a gold file without any sentence.
        ValueError: no training file, ``val_file_index`` out of range, ``val_every < 1``.
    """
    if not train_files:
        raise ValueError("train_files is empty: give at least one People's Daily fold")
    if int(val_every) != val_every or val_every < 1:
        raise ValueError(f"val_every must be a positive integer, got {val_every!r}")
    n_files = len(train_files)
    if not -n_files <= val_file_index < n_files:
        raise ValueError(f"val_file_index {val_file_index} is out of range for {n_files} training files")
    val_idx = val_file_index % n_files

    test = [words for _, words in read_segmented_file(test_gold_file)]
    if not any(test):
        raise DataError(test_gold_file, None, "gold file holds no sentence")
    test_texts = {fold_width("".join(words)) for words in test if words}

    splits = CwsSplits(train=[], val=[], test=test)
    splits.sources = {"train_files": ", ".join(str(p) for p in train_files), "test_gold_file": str(test_gold_file)}
    seen_earlier: set[tuple[str, ...]] = set()  # word sequences of the folds before this one
    candidates: list[list[str]] = []  # would-be training lines, in file order
    for file_idx, path in enumerate(train_files):
        this_fold: set[tuple[str, ...]] = set()
        n_sentences = 0
        for lineno, line in segmented_lines(path):
            words = parse_segmented_line(line, path, lineno, clean=True)
            if not words:
                splits.n_blank_skipped += 1
                continue
            n_sentences += 1
            splits.n_read += 1
            key = tuple(words)
            if key in seen_earlier:
                splits.dropped_duplicates += 1
                continue
            this_fold.add(key)
            if fold_width("".join(words)) in test_texts:
                splits.dropped_test_overlap += 1
                continue
            if file_idx == val_idx and lineno % val_every == 0:
                splits.val.append(words)
            else:
                candidates.append(words)
        if n_sentences == 0:
            raise DataError(path, None, "file holds no sentence")
        seen_earlier |= this_fold

    val_texts = {"".join(words) for words in splits.val}
    for words in candidates:
        if "".join(words) in val_texts:
            splits.dropped_val_overlap += 1
        else:
            splits.train.append(words)
    if not splits.train:
        raise DataError(train_files[0], None, "no training sentence left after the split rules")
    return splits


# --------------------------------------------------------------------------- writing
def write_segmentation(path: str | os.PathLike, sentences: Iterable[Sequence[str]]) -> None:
    """Write a segmentation in the official SIGHAN format.

    One sentence a line, words separated by two spaces, an empty sentence as an empty line,
    UTF-8, ``"\\n"`` line ends. Parent folders are created.

    Raises:
        ValueError: an empty word or a word containing whitespace (it could not be read back).
    """
    lines = []
    for i, words in enumerate(sentences):
        for word in words:
            if not word or any(ch.isspace() for ch in word):
                raise ValueError(f"sentence {i}: word {word!r} is empty or contains whitespace")
        lines.append("  ".join(words) + "\n")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(lines)
