"""Triple-extraction scores (methods.md section 5; bert4keras ``task_relation_extraction``).

Per text, the predicted and the gold triples are sets of ``(subject, predicate, object)``;
X = |pred & gold|, Y = |pred|, Z = |gold| are summed over texts and

    P = X / Y,   R = X / Z,   F1 = 2 X / (Y + Z)

(each 0 when its denominator is 0). As in the post (whose ``SPO`` class compares the
uncased BERT tokenizations of subject and object), subject and object are compared after
:func:`normalize`: lower-cased, accents stripped (NFD, combining marks removed) and every
whitespace or control character removed; predicates are compared as they are.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["normalize", "triple_key", "triple_scores", "triple_diff", "dictionary_baseline"]


def normalize(span: str) -> str:
    """The comparison form of a subject or object string (see module doc)."""
    out = []
    for ch in unicodedata.normalize("NFD", span.lower()):
        if ch.isspace() or unicodedata.category(ch) in ("Mn", "Cc", "Cf"):
            continue
        out.append(ch)
    return "".join(out)


def triple_key(triple: Sequence[Any]) -> tuple[str, str, str]:
    s, p, o = triple[0], triple[1], triple[2]
    return normalize(s), str(p), normalize(o)


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def triple_scores(pred: Sequence[Iterable[Sequence[Any]]], gold: Sequence[Iterable[Sequence[Any]]]) -> dict[str, Any]:
    """Micro P/R/F1 over texts; ``pred[i]`` and ``gold[i]`` are the triples of text i
    (tuples or dicts' ``(s, p, o)`` sequences; duplicates within a text count once)."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted texts but {len(gold)} gold texts")
    x = y = z = 0
    for p_list, g_list in zip(pred, gold):
        p_set = {triple_key(t) for t in p_list}
        g_set = {triple_key(t) for t in g_list}
        x += len(p_set & g_set)
        y += len(p_set)
        z += len(g_set)
    return {
        "precision": _ratio(x, y),
        "recall": _ratio(x, z),
        "f1": _ratio(2 * x, y + z),
        "n_correct": x,
        "n_pred": y,
        "n_gold": z,
        "n_texts": len(gold),
    }


def triple_diff(pred: Sequence[Mapping[str, Any]], gold: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The errors of one text: ``new``, the predicted triples (dicts with ``subject``,
    ``predicate``, ``object``) that are not gold, and ``lack``, the gold triples (as lists) that
    were not predicted, compared in :func:`triple_key` form (one per key, in first-seen order)."""
    gold_keys = {triple_key(t): t for t in gold}
    pred_keys = {triple_key((t["subject"], t["predicate"], t["object"])): t for t in pred}
    return {
        "new": [pred_keys[k] for k in pred_keys if k not in gold_keys],
        "lack": [list(gold_keys[k]) for k in gold_keys if k not in pred_keys],
    }


def dictionary_baseline(
    train: Iterable[Iterable[Sequence[Any]]], texts: Sequence[str]
) -> list[list[tuple[str, str, str]]]:
    """The trivial baseline: for every text, each (s, p, o) of the training triples whose
    subject and object both occur in the text (compared in :func:`normalize` form)."""
    known = sorted({(normalize(t[0]), str(t[1]), normalize(t[2])) for spo in train for t in spo})
    out = []
    for text in texts:
        norm = normalize(text)
        out.append([(s, p, o) for s, p, o in known if s and o and s in norm and o in norm])
    return out
