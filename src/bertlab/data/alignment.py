"""Labels onto WordPiece tokens and predictions back onto characters (``data.tokenizer: wordpiece``).

Pure Python. A token covers the characters ``[offsets[i], ends[i])`` of its text
(:class:`bertlab.data.tokenization.Encoding`; -1 for [CLS]/[SEP]); characters the tokenizer
drops (whitespace, control characters) belong to no token, and several tokens may cover one
character (the jamo pieces of a Hangul syllable). Labels are placed as the posts' code
(bert4keras) places them:

* word segmentation: each word's tokens are tagged B/M/E/S (a word that is one token: S;
  the tokens of a word: B M* E). A word boundary that falls inside a token (``iPhone`` +
  ``6`` is the one token ``iphone6``) cannot be tagged: that token's words become one word
  (counted, ``word_boundaries_inside_tokens``);
* entity spans (NER, triples, MRC answers): a character span maps to the tokens from the
  one starting at its first character to the one ending at its last (bert4keras's
  ``start_mapping`` / ``end_mapping``); a span with a boundary inside a token has no token
  span (None): the caller drops it from training and counts it.

Back to characters: a token's tag covers all its characters (:func:`bmes_to_chars`,
:func:`expand_entity_tags`); a character without a token gets none (the caller keeps
it: whitespace separates words, a dropped non-space character is its own word / outside
every entity).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bertlab.data.cws import B, E, M, S

__all__ = [
    "token_span",
    "bmes_over_tokens",
    "bmes_to_chars",
    "entity_tags",
    "expand_entity_tags",
]


def _starts_ends(offsets: Sequence[int], ends: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """char -> the first token starting there; char end -> the last token ending there."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, (a, b) in enumerate(zip(offsets, ends)):
        if a < 0:
            continue
        first.setdefault(a, i)
        last[b] = i
    return first, last


def token_span(offsets: Sequence[int], ends: Sequence[int], start: int, end: int) -> tuple[int, int] | None:
    """Inclusive token span whose characters are exactly ``[start, end)``; None when a
    boundary falls inside a token (or no token starts/ends there)."""
    first, last = _starts_ends(offsets, ends)
    i, j = first.get(start), last.get(end)
    if i is None or j is None or j < i:
        return None
    return i, j


def token_spans(
    offsets: Sequence[int], ends: Sequence[int], spans: Iterable[tuple[int, int]]
) -> list[tuple[int, int] | None]:
    """:func:`token_span` of many spans of one text (one index)."""
    first, last = _starts_ends(offsets, ends)
    out: list[tuple[int, int] | None] = []
    for start, end in spans:
        i, j = first.get(start), last.get(end)
        out.append(None if i is None or j is None or j < i else (i, j))
    return out


def bmes_over_tokens(
    offsets: Sequence[int], ends: Sequence[int], words: Sequence[str], boundary_tag: int = S
) -> tuple[list[int], int]:
    """BMES tags of the tokens of ``"".join(words)`` (offsets/ends of its encoding, [CLS]/[SEP]
    included and tagged ``boundary_tag``) and the number of word boundaries inside a token.

    A token starts a word when a word starts at its first character (and no earlier token
    starts there); it ends one when a word ends at its last character (and no later token
    ends there): S = both, B = starts only, E = ends only, M = neither.
    """
    starts, stops, pos = set(), set(), 0
    for w in words:
        starts.add(pos)
        pos += len(w)
        stops.add(pos)
    first, last = _starts_ends(offsets, ends)
    tags = []
    for i, (a, b) in enumerate(zip(offsets, ends)):
        if a < 0:
            tags.append(boundary_tag)
            continue
        begins = a in starts and first[a] == i
        finishes = b in stops and last[b] == i
        tags.append(S if begins and finishes else B if begins else E if finishes else M)
    token_starts = set(first)
    inside = sum(1 for p in starts if p and p < pos and p not in token_starts)
    return tags, inside


def bmes_to_chars(n_chars: int, offsets: Sequence[int], ends: Sequence[int], tags: Sequence[int]) -> list[int | None]:
    """Token BMES tags -> one BMES tag per character of the text (None: no token covers it).

    A word starts at the first character of a token tagged S/B and ends at the last
    character of a token tagged S/E; a character covered by several tokens takes the start
    of the first and the end of the last.
    """
    begin = [False] * n_chars
    finish = [False] * n_chars
    covered = [False] * n_chars
    seen_start: set[int] = set()
    for a, b, t in zip(offsets, ends, tags):
        if a < 0 or b <= a:
            continue
        t = int(t)
        if a not in seen_start:  # the first token on this character decides where a word starts
            seen_start.add(a)
            begin[a] = t in (S, B)
        for k in range(a, b):
            covered[k] = True
        finish[b - 1] = t in (S, E)  # the last token to end here decides
    out: list[int | None] = []
    for k in range(n_chars):
        if not covered[k]:
            out.append(None)
        elif begin[k]:
            out.append(S if finish[k] else B)
        else:
            out.append(E if finish[k] else M)
    return out


def entity_tags(n: int, entities: Iterable[tuple[str, int, int]], scheme: str) -> list[str]:
    """Tag strings of ``n`` positions with the ``(type, start, end_exclusive)`` entities:
    BIO: ``B-X I-X...``; BMES: ``S-X`` or ``B-X M-X... E-X``; the rest ``O``."""
    tags = ["O"] * n
    for typ, s, e in entities:
        if e - s == 1 and scheme == "BMES":
            tags[s] = f"S-{typ}"
            continue
        tags[s] = f"B-{typ}"
        for k in range(s + 1, e):
            tags[k] = f"{'I' if scheme == 'BIO' else 'M'}-{typ}"
        if scheme == "BMES":
            tags[e - 1] = f"E-{typ}"
    return tags


def expand_entity_tags(
    n_chars: int, offsets: Sequence[int], ends: Sequence[int], tags: Sequence[str], scheme: str
) -> list[str | None]:
    """Entity tag strings per token -> per character (None: no token covers it), token by
    token, so that the characters read as the tokens do (also across a cut between two
    evaluation pieces): BIO ``B-X`` -> ``B-X I-X...``, ``I-X`` -> ``I-X...``; BMES ``B-X`` ->
    ``B-X M-X...``, ``M-X`` -> ``M-X...``, ``E-X`` -> ``M-X... E-X``, ``S-X`` -> ``S-X`` or
    ``B-X M-X... E-X``; ``O`` -> ``O...``. A character covered by several tokens keeps the
    first one's tag."""
    out: list[str | None] = [None] * n_chars
    for a, b, tag in zip(offsets, ends, tags):
        if a < 0 or b <= a or out[a] is not None:
            continue
        n = b - a
        if tag == "O" or n == 1:
            chars = [tag] * n
        else:
            prefix, typ = tag[0], tag[2:]
            inner = f"{'I' if scheme == 'BIO' else 'M'}-{typ}"
            first = tag if prefix in "BIM" else f"B-{typ}" if prefix == "S" else inner
            last = inner if prefix in "BIM" or scheme == "BIO" else f"E-{typ}"
            chars = [first, *[inner] * (n - 2), last]
        for k, t in enumerate(chars):
            if out[a + k] is None:
                out[a + k] = t
    return out
