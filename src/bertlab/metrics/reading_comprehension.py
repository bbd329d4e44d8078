"""Reading-comprehension metrics equal to the two official evaluation tools.

:func:`sogou_score` (Acc, F1) follows the CIPS-SOGOU QA evaluation tool, the one the post uses
(``evaluate_tool/evaluate.py`` + ``string_tool.py`` + ``punctuation`` as distributed with
bojone/dgcnn_for_reading_comprehension). The tool is Python 2 code on byte strings, and its
rules are reproduced as they act there:

- the prediction is stripped of ASCII whitespace; an empty prediction scores Acc 0, F1 0;
- normalisation (``format_string``): full- to half-width (U+FF01..U+FF5E -> U+0021..U+007E,
  U+3000 -> space), lower case of ASCII letters only (``str.lower`` on a byte string), every
  character of the tool's OWN punctuation list (:data:`SOGOU_PUNCTUATION`: the ASCII
  punctuation and a fixed list of symbols such as ° × ± ÷ ￥ ← ≤ ★ 々 …; characters outside
  it, e.g. – 〜 « ¿, are kept) replaced by a space, then ASCII whitespace removed;
- Acc = 1 when the normalised prediction is one of the gold answers (raw or normalised), or
  when the prediction's space-separated parts equal the STANDARD answer's parts as a set
  (``"上海 北京"`` vs ``"北京 上海"``); the standard answer is ``golds[0]``, the other golds are
  the tool's "expanded" correct answers;
- F1 = character F1 (multiset overlap of the normalised characters), maximum over the golds;
  0 when nothing overlaps.

:func:`cmrc2018_score` (EM, F1) follows the official CMRC 2018 script (ymcui/cmrc2018,
``cmrc2018_evaluate.py`` v4/v5):

- text is lower-cased (Unicode) and stripped; its symbol list :data:`CMRC_SYMBOLS` (``- : _
  * ^ / \\ ~ ` + =`` and ``，。：？！“”；’《》·、「」（）－～『』``) is dropped;
- EM = 1 when the prediction equals one gold answer after dropping the symbols (inner spaces
  kept);
- F1: mixed segmentation, each CJK character in U+4E00..U+9FA5 one token and every other
  run split into words by ``nltk.word_tokenize`` (the Treebank rules of the pinned nltk:
  ``25°c``, ``±6000``, ``０．３７``, ``3.5kg`` stay one word; ``50%`` -> ``50`` ``%``;
  ``don't`` -> ``do`` ``n't``; a double quote becomes two backticks or two apostrophes), then
  the LONGEST COMMON SUBSTRING of the two token lists gives P = lcs / len(pred),
  R = lcs / len(gold); maximum over the golds.

  The script calls ``word_tokenize(run)``, which first splits the run into sentences with
  NLTK's Punkt model, a data download; here it is ``word_tokenize(run, preserve_line=True)``
  (no download, no network). They differ only where Punkt breaks a run inside, after a word
  ending in ``.`` followed by a space and more text (``hello. world``: the script
  ``hello . world``, here ``hello. world``). Punkt keeps a one-letter initial or a known
  abbreviation before a lower-case word (the script lower-cases first). In the shipped CMRC
  2018 files, 14 of the 10,659 gold answers (dev 9, trial 5) have such a run, all at an
  initial or abbreviation (``Henry A. Walsh``, ``St. John``) but one (``S.G. Tallentyre``);
  that could not be checked against Punkt here.

Both take one prediction and a NON-EMPTY gold list (the tools have no "no answer" case).
bertlab's own rule for a question without any gold answer (every window of a CMRC context
or every passage lacks the answer: Acc = F1 = EM = 1 when the prediction is empty, else 0)
lives in :func:`score_answer` / :func:`cmrc_answer` / :func:`reading_comprehension_scores`,
outside the two official functions.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Sequence

#: the Sogou tool's ``punctuation`` file (one character a line, read with a byte-level strip,
#: so its blank lines add nothing); U+00A0 stands for the list's second space-like line.
SOGOU_PUNCTUATION = frozenset(
    "`^~<=>|\u00a0_-,;:!?/.'\"()[]{}@$*\\&#%+"
    "…‰※•—‖‘’“”№←↑→↓∴∨∵∶∩∈∑√∞≯≡≮≤≥≈≌⊥⊙⌒□◆◇◎●★☆♀♂¨°·§¤±"
    "\u3000、。〃々〈〉《》「」『』【】〓〔〕〖〗÷×′▲″△∠≠■ˇˉ￣￥＿！＄（），．：；？～﹑￠"
)

#: the CMRC 2018 script's ``sp_char`` list (its two-character entry "……" can never equal one
#: character, so a lone "…" is kept).
CMRC_SYMBOLS = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")

_ASCII_WS = " \t\n\r\x0b\x0c"
_ASCII_WS_RE = re.compile(r"\s+", re.ASCII)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


# ---------------------------------------------------------------------------- Sogou tool
def full_to_half(text: str) -> str:
    """Full-width ASCII variants (U+FF01..U+FF5E) and U+3000 to their half-width forms."""
    out = []
    for ch in text:
        code = ord(ch)
        if code == 0x3000:
            code = 0x20
        elif 0xFF01 <= code <= 0xFF5E:
            code -= 0xFEE0
        out.append(chr(code))
    return "".join(out)


def _drop_sogou_punctuation(text: str) -> str:
    return "".join(" " if ch in SOGOU_PUNCTUATION else ch for ch in text)


def normalize_answer(text: str) -> str:
    """The Sogou tool's ``format_string``: half-width, ASCII lower case, its punctuation list
    removed, ASCII whitespace removed."""
    text = full_to_half(text).translate(_ASCII_LOWER)
    return _ASCII_WS_RE.sub("", _drop_sogou_punctuation(text)).strip(_ASCII_WS)


def _parts(text: str) -> set[str]:
    """The tool's set of space-separated parts: punctuation -> space, ASCII lower case, split on
    single spaces, each part normalised (empty parts included, as ``str.split(" ")`` makes them)."""
    return {normalize_answer(p) for p in _drop_sogou_punctuation(text).translate(_ASCII_LOWER).split(" ")}


def char_f1(pred: str, gold: str) -> float:
    """The Sogou tool's character F1 of two normalised strings; 0 when nothing overlaps (also
    when either is empty)."""
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(gold)
    return 2 * p * r / (p + r)


def sogou_score(pred: str, golds: Sequence[str]) -> tuple[float, float]:
    """(Acc, F1) of one prediction as the CIPS-SOGOU QA tool scores it; ``golds[0]`` is the
    standard answer, all of ``golds`` the accepted answers (see the module docstring)."""
    if not golds:
        raise ValueError("sogou_score needs at least one gold answer (no-answer questions are scored by score_answer)")
    pred = pred.strip(_ASCII_WS)
    if not pred:
        return 0.0, 0.0
    p = normalize_answer(pred)
    accepted = set(golds) | {normalize_answer(g) for g in golds}
    acc = float(p in accepted or _parts(pred) == _parts(golds[0]))
    f1 = max(char_f1(p, normalize_answer(g)) for g in accepted)
    return acc, f1


# ---------------------------------------------------------------------------- CMRC 2018 script
@functools.lru_cache(maxsize=1)
def _nltk_word_tokenize() -> Callable[..., list[str]]:
    from nltk.tokenize import word_tokenize  # imported on first use: ``import nltk`` takes ~1 s

    return word_tokenize


def _words(run: str) -> list[str]:
    """The script's word split of a non-CJK run: ``nltk.word_tokenize`` without the Punkt
    sentence split (see the module docstring)."""
    return _nltk_word_tokenize()(run, preserve_line=True)


def _is_cmrc_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fa5"


def cmrc_segment(text: str) -> list[str]:
    """The script's ``mixed_segmentation(text, rm_punc=True)``: lower, strip, symbols dropped
    (they do not break a run: ``ab-cd`` is one word ``abcd``), each CJK character a token,
    other runs split into words."""
    tokens: list[str] = []
    run = ""
    for ch in text.lower().strip():
        if ch in CMRC_SYMBOLS:
            continue
        if _is_cmrc_cjk(ch):
            if run:
                tokens.extend(_words(run))
                run = ""
            tokens.append(ch)
        else:
            run += ch
    if run:
        tokens.extend(_words(run))
    return tokens


def cmrc_strip_symbols(text: str) -> str:
    """The script's ``remove_punctuation``: lower, strip, its symbol list removed."""
    return "".join(ch for ch in text.lower().strip() if ch not in CMRC_SYMBOLS)


def longest_common_substring_len(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of two token lists."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def cmrc2018_score(pred: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) of one prediction as the official CMRC 2018 script scores it (0..1, not 0..100)."""
    if not golds:
        raise ValueError("cmrc2018_score needs at least one gold answer (no-answer questions: cmrc_answer)")
    p_tokens = cmrc_segment(pred)
    f1 = 0.0
    for g in golds:
        g_tokens = cmrc_segment(g)
        lcs = longest_common_substring_len(g_tokens, p_tokens)
        if lcs:
            prec, rec = lcs / len(p_tokens), lcs / len(g_tokens)
            f1 = max(f1, 2 * prec * rec / (prec + rec))
    p = cmrc_strip_symbols(pred)
    em = float(any(cmrc_strip_symbols(g) == p for g in golds))
    return em, f1


# ---------------------------------------------------------------------------- bertlab's wrappers
def _no_answer(pred: str) -> tuple[float, float]:
    """bertlab's rule for a question with no gold answer: full marks for an empty prediction."""
    hit = float(not pred.strip())
    return hit, hit


def score_answer(pred: str, golds: Sequence[str]) -> tuple[float, float]:
    """Sogou (Acc, F1), with bertlab's no-answer rule for an empty gold list."""
    return sogou_score(pred, golds) if golds else _no_answer(pred)


def cmrc_answer(pred: str, golds: Sequence[str]) -> tuple[float, float]:
    """CMRC 2018 (EM, F1), with bertlab's no-answer rule for an empty gold list."""
    return cmrc2018_score(pred, golds) if golds else _no_answer(pred)


def reading_comprehension_scores(preds: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Means over questions: Sogou ``acc``, ``f1``, ``final`` = (acc + f1) / 2 (the post's
    metric) and CMRC 2018 ``cmrc_em``, ``cmrc_f1``, ``cmrc_average`` = (em + f1) / 2 (the CMRC
    leaderboard's; 0..1 here, the script prints x100); ``n_questions`` too."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} questions")
    keys = ("acc", "f1", "final", "cmrc_em", "cmrc_f1", "cmrc_average")
    if not preds:
        return {**dict.fromkeys(keys, 0.0), "n_questions": 0}
    n = len(preds)
    sogou = [score_answer(p, g) for p, g in zip(preds, golds)]
    cmrc = [cmrc_answer(p, g) for p, g in zip(preds, golds)]
    acc, f1 = sum(s[0] for s in sogou) / n, sum(s[1] for s in sogou) / n
    em, cf1 = sum(c[0] for c in cmrc) / n, sum(c[1] for c in cmrc) / n
    return {
        "acc": acc,
        "f1": f1,
        "final": (acc + f1) / 2,
        "cmrc_em": em,
        "cmrc_f1": cf1,
        "cmrc_average": (em + cf1) / 2,
        "n_questions": n,
    }
