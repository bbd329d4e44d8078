"""Metrics of generated text (pure functions).

- ``distinct_n``: distinct-n of Li et al. (2016, "A Diversity-Promoting Objective..."):
  the number of DISTINCT n-grams over the number of n-grams, pooled over all samples
  (n-grams never cross sample boundaries). Chinese text is scored in characters; a sample
  may also be a token list.
- ``perplexity``: exp(total negative log-likelihood / number of predicted tokens), i.e.
  the per-token (here per-character, [SEP] included) perplexity of held-out text;
  ``PerplexityMeter`` accumulates it per group (per label).
- ``control_accuracy``: the share of samples that an independent classifier assigns to the
  label they were generated for. The classifier is any callable ``texts -> labels``.
- ``copy_rate``: the share of samples that contain a substring of at least ``min_chars``
  characters of some training text (memorisation check; whitespace ignored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence

__all__ = ["ngrams", "distinct_n", "perplexity", "PerplexityMeter", "control_accuracy", "copy_rate"]


def ngrams(seq: Sequence[Hashable] | str, n: int) -> list[tuple]:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    items = list(seq)
    return [tuple(items[i : i + n]) for i in range(len(items) - n + 1)]


def distinct_n(samples: Iterable[Sequence[Hashable] | str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``samples``; 0.0 when there is no n-gram at all."""
    total, seen = 0, set()
    for s in samples:
        grams = ngrams(s, n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """exp(nll_sum / n_tokens) (natural log); NaN for no tokens."""
    if n_tokens <= 0:
        return math.nan
    return math.exp(nll_sum / n_tokens)


class PerplexityMeter:
    """Sums token NLLs and counts per group; ``compute()`` -> {group: ppl, "all": ppl}."""

    def __init__(self) -> None:
        self.nll: dict[Hashable, float] = {}
        self.count: dict[Hashable, int] = {}

    def update(self, group: Hashable, nll_sum: float, n_tokens: int) -> None:
        self.nll[group] = self.nll.get(group, 0.0) + float(nll_sum)
        self.count[group] = self.count.get(group, 0) + int(n_tokens)

    def compute(self) -> dict[Hashable, float]:
        out = {g: perplexity(self.nll[g], self.count[g]) for g in sorted(self.nll, key=str)}
        out["all"] = perplexity(sum(self.nll.values()), sum(self.count.values()))
        return out


def control_accuracy(
    texts: Sequence[str], target_labels: Sequence[int], classifier: Callable[[list[str]], Sequence[int]]
) -> float:
    """Share of ``texts`` that ``classifier`` labels as their ``target_labels``."""
    if len(texts) != len(target_labels):
        raise ValueError(f"{len(texts)} texts but {len(target_labels)} target labels")
    if not texts:
        return math.nan
    predicted = list(classifier(list(texts)))
    if len(predicted) != len(texts):
        raise ValueError(f"the classifier returned {len(predicted)} labels for {len(texts)} texts")
    return sum(int(p) == int(t) for p, t in zip(predicted, target_labels)) / len(texts)


def copy_rate(samples: Sequence[str], train_texts: Iterable[str], min_chars: int = 20) -> float:
    """Share of ``samples`` with a substring of >= ``min_chars`` characters that occurs in a
    training text (whitespace removed on both sides)."""
    if not samples:
        return math.nan
    corpus = "\n".join("".join(t.split()) for t in train_texts)
    copied = 0
    for s in samples:
        s = "".join(s.split())
        if any(s[i : i + min_chars] in corpus for i in range(len(s) - min_chars + 1)):
            copied += 1
    return copied / len(samples)
