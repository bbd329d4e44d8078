"""Word segmentation scores, as defined by the SIGHAN bakeoff ``score`` script.

A predicted word is correct when its character span ``[start, end)`` in the sentence equals
the span of a gold word. Over the whole corpus:

* precision = correct words / predicted words ("TEST WORDS PRECISION"),
* recall = correct words / gold words ("TRUE WORDS RECALL"),
* f1 = 2 P R / (P + R),
* OOV words are gold word occurrences not in the training word list; OOV recall = correct
  OOV gold words / OOV gold words, IV recall likewise for the other gold words, and
  OOV rate = OOV gold words / gold words.

(The perl script aligns the two one-word-a-line files with ``diff``; matching spans is the
exact form of the same count and does not depend on diff's alignment choices.)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["word_spans", "segmentation_scores"]


def word_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of consecutive words: ``["我", "爱"] -> [(0, 1), (1, 2)]``."""
    spans = []
    start = 0
    for word in words:
        end = start + len(word)
        spans.append((start, end))
        start = end
    return spans


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def segmentation_scores(
    pred: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    train_words: set[str] | frozenset[str] | None = None,
) -> dict:
    """Precision, recall, F1 and OOV/IV recall of a segmentation against the gold one.

    Args:
        pred: predicted sentences, each a list of words.
        gold: gold sentences, same number and same texts (an empty sentence is allowed in
            both, e.g. a blank line of the test file).
        train_words: the training word list; without it the OOV/IV fields are ``None``.

    Returns:
        A dict with ``precision``, ``recall``, ``f1`` (0.0 when undefined), ``oov_rate``,
        ``oov_recall``, ``iv_recall`` (``None`` without ``train_words``; ``oov_recall`` is
        also ``None`` when the gold holds no OOV word, ``iv_recall`` when it holds no IV
        word), and the counts ``n_sentences``, ``n_pred``, ``n_gold``, ``n_correct``,
        ``n_oov``, ``n_oov_correct``, ``n_iv``, ``n_iv_correct`` (the last four ``None``
        without ``train_words``).

    Raises:
        ValueError: different numbers of sentences, a sentence whose predicted and gold
            words do not join to the same text (named by its 0-based index), or an empty word.
    """
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted sentences but {len(gold)} gold sentences")
    n_pred = n_gold = n_correct = 0
    n_oov = n_oov_correct = n_iv = n_iv_correct = 0
    for idx, (p_words, g_words) in enumerate(zip(pred, gold)):
        p_text, g_text = "".join(p_words), "".join(g_words)
        if p_text != g_text:
            raise ValueError(
                f"sentence index {idx}: predicted text differs from the gold text "
                f"({_preview(p_text)!r} vs {_preview(g_text)!r})"
            )
        for kind, words in (("predicted", p_words), ("gold", g_words)):
            if any(not w for w in words):
                raise ValueError(f"sentence index {idx}: an empty {kind} word")
        pred_spans = set(word_spans(p_words))
        n_pred += len(p_words)
        n_gold += len(g_words)
        for word, span in zip(g_words, word_spans(g_words)):
            hit = span in pred_spans
            n_correct += hit
            if train_words is not None:
                if word in train_words:
                    n_iv += 1
                    n_iv_correct += hit
                else:
                    n_oov += 1
                    n_oov_correct += hit

    precision = _ratio(n_correct, n_pred)
    recall = _ratio(n_correct, n_gold)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    with_dict = train_words is not None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "oov_rate": _ratio(n_oov, n_gold) if with_dict else None,
        "oov_recall": n_oov_correct / n_oov if with_dict and n_oov else None,
        "iv_recall": n_iv_correct / n_iv if with_dict and n_iv else None,
        "n_sentences": len(gold),
        "n_pred": n_pred,
        "n_gold": n_gold,
        "n_correct": n_correct,
        "n_oov": n_oov if with_dict else None,
        "n_oov_correct": n_oov_correct if with_dict else None,
        "n_iv": n_iv if with_dict else None,
        "n_iv_correct": n_iv_correct if with_dict else None,
    }


def _preview(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[:n] + "..."
