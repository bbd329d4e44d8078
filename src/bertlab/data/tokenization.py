"""Tokenization over a BERT WordPiece vocabulary, with offsets: two modes (``data.tokenizer``).

``char`` (:class:`CharTokenizer`): every non-space character of the input becomes exactly
one token, so a tag per token is a tag per character and predictions map back to the
original text by the stored character offsets. Characters are looked up in
the vocab NFKC-normalised and lower-cased first (so the full-width digits and letters of
People's Daily and the ASCII ones of the PKU test set share one embedding), then NFKC
only, then as they are, then lower-cased; anything else becomes [UNK] (and is counted),
but its offset is kept, so no input character is ever lost.

``wordpiece`` (:class:`WordPieceTokenizer`): BERT's own tokenization, as the posts' code
(bert4keras) and Hugging Face feed BERT: lower-casing, CJK characters one token each, other
runs (digits, Latin) split into WordPiece pieces (``1998`` is one token of bert-base-chinese,
``iPhone6s`` is ``iphone6`` ``##s``); built on the ``tokenizers`` library (the engine of
``BertTokenizerFast``), its ids equal ``BertTokenizerFast`` over the same vocab.txt
(tests/test_wordpiece.py). A token covers the characters ``[offsets[i], ends[i])`` of the
text; characters the tokenizer drops (whitespace, control characters) belong to no token,
and several tokens may share one character (a Hangul syllable's jamo pieces).

Both give an :class:`Encoding` with ``ids``, ``offsets`` (first character of each token)
and ``ends`` (one past its last character); the DataModules place labels and map
predictions back through them (:mod:`bertlab.data.alignment`).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bertlab.utils.errors import ConfigError, DataError


def load_vocab_tokens(path: str) -> list[str]:
    """The tokens of a BERT vocab.txt in id order."""
    if not os.path.isfile(path):
        raise DataError(path, None, "vocab file not found")
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n").rstrip("\r") for line in f]
    if not tokens:
        raise DataError(path, None, "vocab file is empty")
    return tokens


#: the values of ``data.tokenizer``
TOKENIZER_MODES = ("char", "wordpiece")


@dataclass
class Encoding:
    """One encoded text: token ids with [CLS]/[SEP] and the char span of every token.

    ``offsets[i]`` is the index into the original text of the first character of token
    ``i``, ``ends[i]`` one past its last character; -1 for [CLS]/[SEP]. In char mode
    ``ends[i] == offsets[i] + 1``.
    """

    ids: list[int]
    offsets: list[int]
    num_unk: int = 0
    ends: list[int] = field(default_factory=list)


@dataclass
class _Vocab:
    """A BERT vocab file (one token a line), possibly trimmed, and its special ids."""

    vocab_file: str
    #: ids of the vocab file to keep, in their new order (a trimmed vocab); None = all
    keep_ids: list[int] | None = None
    vocab: dict[str, int] = field(init=False, repr=False)
    tokens: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        full = load_vocab_tokens(self.vocab_file)
        if self.keep_ids is not None:
            bad = [i for i in self.keep_ids if not 0 <= i < len(full)]
            if bad:
                raise DataError(self.vocab_file, None, f"kept id {bad[0]} is outside this vocab of {len(full)} tokens")
        self.tokens = full if self.keep_ids is None else [full[i] for i in self.keep_ids]
        # as transformers' load_vocab: a token listed twice keeps its last id
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


@dataclass
class CharTokenizer(_Vocab):
    """Maps characters to ids of a BERT vocab file (one token a line)."""

    mode = "char"

    _cache: dict[str, int] = field(init=False, repr=False, default_factory=dict)

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
        return Encoding(ids, offsets, num_unk, [o + 1 if o >= 0 else -1 for o in offsets])

    def training_ids(self, texts: Iterable[str]) -> set[int]:
        """The ids the training texts use (what ``data.trim_vocab: corpus`` keeps)."""
        return {self.char_id(ch) for text in texts for ch in text if not ch.isspace()}


#: full-width ASCII variants (U+FF01..U+FF5E) -> ASCII, one character for one
_WIDTH_FOLD = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}


@dataclass
class WordPieceTokenizer(_Vocab):
    """BERT's WordPiece tokenization (lower-cased) of a vocab file, with character offsets.

    ``encode(text).ids`` equals ``BertTokenizerFast`` over the same vocab.txt with
    ``do_lower_case=True`` (BertNormalizer: clean text, CJK characters split, lower case,
    accents stripped; BertPreTokenizer; WordPiece with ``##`` continuations and [UNK] for a
    word it cannot piece, 100 characters at most a word).

    ``keep_ids`` (a trimmed vocab) tokenizes with the kept tokens only, as ``BertTokenizerFast``
    over the trimmed vocab.txt does. ``fold_width=True`` first maps full-width ASCII variants
    (``１９９８``, ``ｉＰｈｏｎｅ``, ``，``) to ASCII, one character for one (offsets unchanged),
    as char mode's NFKC does: the DataModules use it so that People's Daily's full-width
    digits and the PKU test set's ASCII ones are the same tokens; the default (False) is
    plain ``BertTokenizerFast``.
    """

    fold_width: bool = False
    backend: Any = field(init=False, repr=False)
    _fold: Any = field(init=False, repr=False, default=None)

    mode = "wordpiece"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.backend = self.hf_tokenizer(fold_width=False)
        self._fold = str.maketrans(_WIDTH_FOLD) if self.fold_width else None

    def hf_tokenizer(self, fold_width: bool | None = None) -> Any:
        """The ``tokenizers.Tokenizer`` (with the [CLS]/[SEP] template; the width fold as
        ``Replace`` normalizers when ``fold_width``, default: this tokenizer's): what
        ``bertlab.export`` writes as tokenizer.json."""
        from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
        from tokenizers.models import WordPiece

        fold = self.fold_width if fold_width is None else fold_width
        tok = Tokenizer(WordPiece(self.vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        bert = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
        )
        folds = [normalizers.Replace(a, b) for a, b in _WIDTH_FOLD.items()] if fold else []
        tok.normalizer = normalizers.Sequence([*folds, bert]) if folds else bert
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", self.cls_id), ("[SEP]", self.sep_id)],
        )
        return tok

    def _prepare(self, text: str) -> str:
        return text.translate(self._fold) if self._fold is not None else text

    def encode(self, text: str) -> Encoding:
        """[CLS] + the WordPiece tokens of ``text`` + [SEP], with each token's character span."""
        enc = self.backend.encode(self._prepare(text), add_special_tokens=False)
        ids = [self.cls_id, *enc.ids, self.sep_id]
        offsets = [-1, *(a for a, _ in enc.offsets), -1]
        ends = [-1, *(b for _, b in enc.offsets), -1]
        return Encoding(ids, offsets, enc.ids.count(self.unk_id), ends)

    def training_ids(self, texts: Iterable[str]) -> set[int]:
        """The ids the training texts use (what ``data.trim_vocab: corpus`` keeps)."""
        used: set[int] = set()
        for enc in self.backend.encode_batch([self._prepare(t) for t in texts], add_special_tokens=False):
            used.update(enc.ids)
        return used


Tokenizer = CharTokenizer | WordPieceTokenizer


def make_tokenizer(mode: str, vocab_file: str, keep_ids: list[int] | None = None) -> Tokenizer:
    """The tokenizer of ``data.tokenizer`` (``char`` | ``wordpiece``) as the DataModules build it
    (WordPiece with full-width ASCII folded to ASCII: see :class:`WordPieceTokenizer`)."""
    if mode == "char":
        return CharTokenizer(vocab_file, keep_ids=keep_ids)
    if mode == "wordpiece":
        return WordPieceTokenizer(vocab_file, keep_ids=keep_ids, fold_width=True)
    raise ConfigError("data.tokenizer", f"unknown tokenizer {mode!r}; choose one of {list(TOKENIZER_MODES)}")
