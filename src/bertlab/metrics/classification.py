"""Sentence-classification scores: accuracy over the examples that have a prediction, and the
same over the examples whose text is not in the training split (``acc_unseen``: the sentiment
corpus's evaluation splits share about a third of their texts with its training split)."""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from typing import Any

__all__ = ["unseen_accuracy", "accuracy_scores"]


def unseen_accuracy(
    rows: Iterable[tuple[Any, Any, str]], train_texts: Container[str] | None
) -> tuple[float | None, int]:
    """Accuracy over the ``(predicted, gold, text)`` rows whose text is not in ``train_texts``
    (rows without a prediction, ``predicted is None``, are left out) and how many rows that is;
    ``None`` (not 0) when there is no such row or the training texts are unknown (``None``)."""
    if train_texts is None:
        return None, 0
    hits = [p == g for p, g, t in rows if p is not None and t not in train_texts]
    return (sum(hits) / len(hits) if hits else None), len(hits)


def accuracy_scores(
    pred: Sequence[Any], gold: Sequence[Any], texts: Sequence[str], train_texts: Container[str] | None
) -> dict[str, Any]:
    """``acc`` / ``n_examples`` / ``n_correct`` over the examples with a prediction (``pred[i]``
    not None), ``acc_unseen`` / ``n_unseen``: :func:`unseen_accuracy` against ``train_texts``."""
    pairs = [(p, g) for p, g in zip(pred, gold) if p is not None]
    correct = sum(p == g for p, g in pairs)
    acc_unseen, n_unseen = unseen_accuracy(zip(pred, gold, texts), train_texts)
    return {
        "acc": correct / len(pairs) if pairs else 0.0,
        "n_examples": len(pairs),
        "n_correct": correct,
        "acc_unseen": acc_unseen,
        "n_unseen": n_unseen,
    }
