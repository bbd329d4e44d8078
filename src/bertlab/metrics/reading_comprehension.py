"""Reading-comprehension metrics as the Sogou (CIPS-SOGOU QA) evaluation tool computes them.

Answers are normalised before comparison: full-width characters become half-width
(U+FF01..U+FF5E -> U+0021..U+007E, the ideographic space U+3000 -> a space), the text is
lower-cased, and punctuation (ASCII ``string.punctuation`` and every Unicode ``P*``
character, e.g. ，。、《》“”) and whitespace are removed. Then, per question:

- Acc = 1 if the normalised prediction equals one of the normalised gold answers, else 0;
- F1 = character-level F1 (multiset overlap of characters), maximised over the gold answers;
- Final = (Acc + F1) / 2, all three averaged over the questions.

A question with an EMPTY gold answer set is a "no answer" question: Acc = F1 = 1 when the
prediction is empty, else 0. An empty prediction scores 0 against a non-empty gold answer.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

_ASCII_PUNCT = set(string.punctuation)


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


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """Full- to half-width, lower case, punctuation and whitespace removed."""
    text = full_to_half(text).lower()
    return "".join(ch for ch in text if not ch.isspace() and not _is_punct(ch))


def char_f1(pred: str, gold: str) -> float:
    """Character-level F1 of two already normalised strings (both empty: 1)."""
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(gold)
    return 2 * p * r / (p + r)


def score_answer(pred: str, golds: Sequence[str]) -> tuple[float, float]:
    """(Acc, F1) of one prediction against a question's gold answer set."""
    p = normalize_answer(pred)
    gs = [normalize_answer(g) for g in golds]
    if not gs:  # a no-answer question
        return float(p == ""), float(p == "")
    acc = float(p in gs)
    f1 = max(char_f1(p, g) for g in gs)
    return acc, f1


def reading_comprehension_scores(preds: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean Acc, F1 and Final = (Acc + F1) / 2 over questions; ``n_questions`` too."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} questions")
    if not preds:
        return {"acc": 0.0, "f1": 0.0, "final": 0.0, "n_questions": 0}
    accs, f1s = zip(*(score_answer(p, g) for p, g in zip(preds, golds)))
    acc, f1 = sum(accs) / len(accs), sum(f1s) / len(f1s)
    return {"acc": acc, "f1": f1, "final": (acc + f1) / 2, "n_questions": len(preds)}
