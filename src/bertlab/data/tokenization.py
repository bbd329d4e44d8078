"""Character-level tokenization over a BERT WordPiece vocabulary, with offsets.

Chinese sequence labeling works on characters: every non-space character of the input
becomes exactly one token, so a tag per token is a tag per character and predictions map
back to the original text by the stored character offsets. Characters are looked up in
the vocab NFKC-normalised and lower-cased first (so the full-width digits and letters of
People's Daily and the ASCII ones of the PKU test set share one embedding), then NFKC
only, then as they are, then lower-cased; anything else becomes [UNK] (and is counted),
but its offset is kept, so no input character is ever lost.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field

from bertlab.utils.errors import DataError


def load_vocab_tokens(path: str) -> list[str]:
    """The tokens of a BERT vocab.txt in id order."""
    if not os.path.isfile(path):
        raise DataError(path, None, "vocab file not found")
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n").rstrip("\r") for line in f]
    if not tokens:
        raise DataError(path, None, "vocab file is empty")
    return tokens


@dataclass
class Encoding:
    """One encoded text: token ids with [CLS]/[SEP] and the char offset of every token.

    ``offsets[i]`` is the index into the original text of token ``i``; -1 for [CLS]/[SEP].
    """

    ids: list[int]
    offsets: list[int]
    num_unk: int = 0


@dataclass
class CharTokenizer:
    """Maps characters to ids of a BERT vocab file (one token a line)."""

    vocab_file: str
    #: ids of the vocab file to keep, in their new order (a trimmed vocab); None = all
    keep_ids: list[int] | None = None
    vocab: dict[str, int] = field(init=False, repr=False)
    tokens: list[str] = field(init=False, repr=False)
    _cache: dict[str, int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        full = load_vocab_tokens(self.vocab_file)
        if self.keep_ids is not None:
            bad = [i for i in self.keep_ids if not 0 <= i < len(full)]
            if bad:
                raise DataError(self.vocab_file, None, f"kept id {bad[0]} is outside this vocab of {len(full)} tokens")
        self.tokens = full if self.keep_ids is None else [full[i] for i in self.keep_ids]
        self.vocab = {tok: i for i, tok in enumerate(self.tokens)}
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if special not in self.vocab:
                raise DataError(self.vocab_file, None, f"vocab lacks the special token {special}")

    def save_vocab(self, path: str) -> None:
        """Write the (possibly trimmed) vocab, one token a line, loadable by HF tokenizers."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(self.tokens) + "\n")

    @property
    def pad_id(self) -> int:
        return self.vocab["[PAD]"]

    @property
    def unk_id(self) -> int:
        return self.vocab["[UNK]"]

    @property
    def cls_id(self) -> int:
        return self.vocab["[CLS]"]

    @property
    def sep_id(self) -> int:
        return self.vocab["[SEP]"]

    def __len__(self) -> int:
        return len(self.vocab)

    def char_id(self, ch: str) -> int:
        """The vocab id of one character (see the module doc for the fallback order)."""
        hit = self._cache.get(ch)
        if hit is not None:
            return hit
        nfkc = unicodedata.normalize("NFKC", ch)
        idx = self.unk_id
        for cand in (nfkc.lower(), nfkc, ch, ch.lower()):
            if cand in self.vocab:
                idx = self.vocab[cand]
                break
        self._cache[ch] = idx
        return idx

    def encode(self, text: str) -> Encoding:
        """[CLS] + one token per non-whitespace character + [SEP]."""
        ids = [self.cls_id]
        offsets = [-1]
        num_unk = 0
        for i, ch in enumerate(text):
            if ch.isspace():
                continue
            idx = self.char_id(ch)
            num_unk += idx == self.unk_id
            ids.append(idx)
            offsets.append(i)
        ids.append(self.sep_id)
        offsets.append(-1)
        return Encoding(ids, offsets, num_unk)
