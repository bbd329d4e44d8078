"""Vocabulary trimming as bert4keras does it (``data.trim_vocab``).

- ``none``: the full vocab (21,128 tokens for bert-base-chinese).
- ``simplified``: bert4keras's ``load_vocab(simplified=True)``: drop every multi-character
  token that contains a CJK character or punctuation after removing a leading ``##``
  (e.g. ``##的``, ``##，``), keeping the special tokens first.
- ``corpus``: the special tokens, every token the tokenizer produces on the TRAINING texts,
  and every single CJK character of the vocab (so a test character never becomes [UNK]
  just because training did not contain it). With ``data.tokenizer: wordpiece`` the used
  tokens are the WordPiece pieces of the training texts (``1998``, ``iphone``, ``##s``), and
  every one-character token and ``##`` + one character is kept as well, so a word unseen in
  training is still pieced (``2005`` -> ``200`` ``##5``) rather than [UNK]. WordPiece over
  the trimmed vocab gives the training texts exactly the pieces it gave them over the full
  vocab (the longest match at each step is a kept token), and is what ``BertTokenizerFast``
  over the trimmed vocab.txt (``bertlab.export``) does.

The result is the list of kept ids of the original vocab, in the new order; the embedding
rows (and the MLM head rows) of a loaded checkpoint are sliced with the same list, and the
trimmed vocab.txt is written next to the model.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from bertlab.utils.errors import ConfigError

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MODES = ("none", "simplified", "corpus")


def is_cjk(ch: str) -> bool:
    """bert4keras / Google BERT's CJK ranges."""
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def is_punctuation(ch: str) -> bool:
    """bert4keras: ASCII punctuation ranges or any Unicode P* category."""
    code = ord(ch)
    return (
        33 <= code <= 47
        or 58 <= code <= 64
        or 91 <= code <= 96
        or 123 <= code <= 126
        or unicodedata.category(ch).startswith("P")
    )


def _stem(token: str) -> str:
    return token[2:] if token.startswith("##") else token


def trim_vocab(
    tokens: list[str], mode: str, used_ids: Iterable[int] | None = None, wordpiece: bool = False
) -> list[int]:
    """Kept ids of ``tokens`` (the vocab in id order) under ``mode``; specials come first;
    ``wordpiece``: also every one-character piece (``x``, ``##x``) in ``corpus`` mode."""
    if mode not in MODES:
        raise ConfigError("data.trim_vocab", f"unknown mode {mode!r}; choose one of {list(MODES)}")
    if mode == "none":
        return list(range(len(tokens)))
    index = {t: i for i, t in enumerate(tokens)}
    keep = [index[t] for t in SPECIALS if t in index]
    seen = set(keep)
    used = set(used_ids or ())
    if mode == "corpus" and not used:
        raise ConfigError("data.trim_vocab", "'corpus' needs the training texts (this task provides none)")
    for i, tok in enumerate(tokens):
        if i in seen:
            continue
        if mode == "simplified":
            ok = len(tok) == 1 or not any(is_cjk(c) or is_punctuation(c) for c in _stem(tok))
        else:
            ok = i in used or (len(tok) == 1 and is_cjk(tok)) or (wordpiece and len(_stem(tok)) == 1)
        if ok:
            keep.append(i)
            seen.add(i)
    return keep
