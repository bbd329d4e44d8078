"""The MLM pretraining corpus: the union of the shipped TRAINING texts, never a dev or test one.

Sources (all under ``data/``, see data/README.md):

* ``peoples_daily``: People's Daily 1998, the TRAINING split of :func:`bertlab.data.cws.load_cws_splits`
  (the same cleaning and exclusions as the CWS job: no line equal to a PKU test sentence,
  no validation line), kept with its word segmentation (for whole-word masking).
* ``sentiment``: the ``train`` split of the sentiment corpus (:func:`bertlab.data.sentiment.read_sentiment`).
* ``lic2019``: the ``text`` of every record of LIC2019 ``train_data.json.xz``.
* ``cmrc``: the distinct CMRC 2018 contexts (dev + trial files) whose
  :func:`cmrc_split_of_context` is ``"train"``.

On top of each source's own split rule, every corpus text whose normalised form (full/half
width folded, whitespace removed) equals a held-out text is dropped. Held-out texts: the
PKU test sentences, the CWS validation lines, sentiment valid + test (about 1,700 sentiment
TRAINING lines repeat a valid/test line verbatim), LIC2019 dev, the CMRC contexts of the
val/test splits, and any ``extra_heldout_files`` (e.g. the People's Daily NER dev/test).

Texts keep corpus order (People's Daily lines follow their articles), so that packing
consecutive texts into one sequence packs running text.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bertlab.data.cws import fold_width, load_cws_splits
from bertlab.data.io import open_binary, open_text_lines
from bertlab.data.sentiment import read_sentiment
from bertlab.utils.errors import ConfigError, DataError

__all__ = [
    "SOURCES",
    "CorpusText",
    "PretrainingCorpus",
    "cmrc_split_of_context",
    "read_cmrc_contexts",
    "read_lic2019_texts",
    "read_conll_sentences",
    "normalise",
    "build_pretraining_corpus",
]

SOURCES = ("peoples_daily", "sentiment", "lic2019", "cmrc")


def cmrc_split_of_context(context: str) -> str:
    """The split of a CMRC 2018 context: ``"train"``, ``"val"`` or ``"test"``.

    Rule (deterministic, independent of file order and of the other contexts): take the
    SHA-1 of the context's UTF-8 bytes as an integer, modulo 10: 0 -> ``"test"``,
    1 -> ``"val"``, 2..9 -> ``"train"`` (about 10% / 10% / 80%). Every question of a context
    belongs to its context's split, so no passage is shared between splits. The MLM
    pretraining corpus uses the ``"train"`` contexts only; the reading-comprehension task
    splits CMRC dev + trial with this same function.
    """
    if not isinstance(context, str):
        raise TypeError(f"context must be a str, got {type(context).__name__}")
    bucket = int(hashlib.sha1(context.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def normalise(text: str) -> str:
    """The form in which corpus texts are compared with held-out texts."""
    return "".join(fold_width(text).split())


@dataclass(frozen=True)
class CorpusText:
    """One text of the corpus; ``words`` is its segmentation when known (People's Daily)."""

    text: str
    source: str
    words: tuple[str, ...] | None = None


@dataclass
class PretrainingCorpus:
    texts: list[CorpusText]
    #: source -> texts dropped because they equal a held-out text
    dropped_heldout: dict[str, int] = field(default_factory=dict)
    #: number of distinct held-out texts compared against
    n_heldout: int = 0

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {"texts": len(self.texts), "chars": sum(len(t.text) for t in self.texts)}
        by_source = Counter(t.source for t in self.texts)
        chars: Counter[str] = Counter()
        for t in self.texts:
            chars[t.source] += len(t.text)
        for src in sorted(by_source):
            out[f"{src}_texts"] = by_source[src]
            out[f"{src}_chars"] = chars[src]
        for src, n in sorted(self.dropped_heldout.items()):
            out[f"{src}_dropped_heldout"] = n
        out["heldout_texts"] = self.n_heldout
        return out


# --------------------------------------------------------------------------- readers
def _load_json(path: str | os.PathLike):
    with open_binary(path) as fh:
        raw = fh.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, getattr(err, "lineno", None), f"not valid UTF-8 JSON ({err})") from None


def read_cmrc_contexts(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The distinct contexts of CMRC 2018 SQuAD-style files, in file order."""
    seen: set[str] = set()
    out: list[str] = []
    for path in paths:
        doc = _load_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise DataError(path, None, "expected SQuAD JSON with a top-level 'data' list")
        for article in doc["data"]:
            for para in article.get("paragraphs", []):
                ctx = para.get("context")
                if not isinstance(ctx, str):
                    raise DataError(path, None, "a paragraph without a string 'context'")
                if ctx.strip() and ctx not in seen:
                    seen.add(ctx)
                    out.append(ctx)
    return out


def read_lic2019_texts(path: str | os.PathLike) -> list[str]:
    """The ``text`` of every JSON line of a LIC2019 / DuIE file."""
    out = []
    for num, line in open_text_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, num, f"not valid JSON ({err.msg})") from None
        text = rec.get("text") if isinstance(rec, dict) else None
        if not isinstance(text, str):
            raise DataError(path, num, "record without a string 'text'")
        if text.strip():
            out.append(text)
    return out


def read_conll_sentences(path: str | os.PathLike) -> list[str]:
    """Sentences of a ``char TAG`` per line file (NER), blank line between sentences."""
    out: list[str] = []
    cur: list[str] = []
    for _, line in open_text_lines(path):
        if not line.strip():
            if cur:
                out.append("".join(cur))
                cur = []
            continue
        cur.append(line.split()[0])
    if cur:
        out.append("".join(cur))
    return out


# --------------------------------------------------------------------------- the corpus
def build_pretraining_corpus(
    pd_files: Sequence[str | os.PathLike],
    pku_test_gold_file: str | os.PathLike,
    sentiment_file: str | os.PathLike,
    lic2019_train_file: str | os.PathLike,
    lic2019_dev_file: str | os.PathLike,
    cmrc_files: Sequence[str | os.PathLike],
    extra_heldout_files: Iterable[str | os.PathLike] = (),
    sources: Sequence[str] = SOURCES,
    cws_val_every: int = 10,
) -> PretrainingCorpus:
    """Build the corpus from the sources named in ``sources`` (see the module doc).

    The held-out texts are always read, whichever sources are used, so that a text can never
    enter through another source. ``extra_heldout_files``: ``char TAG`` CoNLL files (NER) or
    plain text files, one text a line.
    """
    files = [
        *pd_files,
        pku_test_gold_file,
        sentiment_file,
        lic2019_train_file,
        lic2019_dev_file,
        *cmrc_files,
        *extra_heldout_files,
    ]
    stamp = tuple((str(f), os.path.getmtime(f), os.path.getsize(f)) if os.path.isfile(f) else (str(f),) for f in files)
    key = (stamp, len(pd_files), len(cmrc_files), tuple(sources), cws_val_every)
    hit = _CACHE.get(key)
    if hit is not None:  # the same files read again in this process (tests, evaluate after train)
        return PretrainingCorpus(list(hit.texts), dict(hit.dropped_heldout), hit.n_heldout)
    corpus = _build(
        list(pd_files),
        pku_test_gold_file,
        sentiment_file,
        lic2019_train_file,
        lic2019_dev_file,
        list(cmrc_files),
        list(extra_heldout_files),
        list(sources),
        cws_val_every,
    )
    _CACHE.clear()
    _CACHE[key] = corpus
    return PretrainingCorpus(list(corpus.texts), dict(corpus.dropped_heldout), corpus.n_heldout)


_CACHE: dict[tuple, PretrainingCorpus] = {}


def _build(
    pd_files,
    pku_test_gold_file,
    sentiment_file,
    lic2019_train_file,
    lic2019_dev_file,
    cmrc_files,
    extra_heldout_files,
    sources,
    cws_val_every,
) -> PretrainingCorpus:
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ConfigError("data.sources", f"unknown or no source {unknown}; choose from {list(SOURCES)}")
    splits = load_cws_splits(list(pd_files), pku_test_gold_file, val_every=cws_val_every)
    contexts = read_cmrc_contexts(cmrc_files)

    heldout: set[str] = set()
    heldout.update(normalise("".join(w)) for w in splits.test if w)
    heldout.update(normalise("".join(w)) for w in splits.val)
    for split in ("valid", "test"):
        heldout.update(normalise(t) for t, _ in read_sentiment(str(sentiment_file), split))
    heldout.update(normalise(t) for t in read_lic2019_texts(lic2019_dev_file))
    heldout.update(normalise(c) for c in contexts if cmrc_split_of_context(c) != "train")
    for path in extra_heldout_files:
        lines = [line for _, line in open_text_lines(path)]
        head = [line.split() for line in lines[:200] if line.strip()]
        conll = bool(head) and all(len(f) == 2 and len(f[0]) == 1 for f in head)  # "char TAG" lines
        texts = read_conll_sentences(path) if conll else lines
        heldout.update(normalise(t) for t in texts)
    heldout.discard("")

    candidates: list[CorpusText] = []
    if "peoples_daily" in sources:
        candidates += [CorpusText("".join(w), "peoples_daily", tuple(w)) for w in splits.train]
    if "sentiment" in sources:
        candidates += [CorpusText(t, "sentiment") for t, _ in read_sentiment(str(sentiment_file), "train")]
    if "lic2019" in sources:
        candidates += [CorpusText(t, "lic2019") for t in read_lic2019_texts(lic2019_train_file)]
    if "cmrc" in sources:
        candidates += [CorpusText(c, "cmrc") for c in contexts if cmrc_split_of_context(c) == "train"]

    corpus = PretrainingCorpus(texts=[], dropped_heldout={s: 0 for s in sources}, n_heldout=len(heldout))
    for item in candidates:
        key = normalise(item.text)
        if not key:
            continue
        if key in heldout:
            corpus.dropped_heldout[item.source] += 1
            continue
        corpus.texts.append(item)
    if not corpus.texts:
        raise DataError(str(pd_files[0]) if pd_files else "<corpus>", None, "the pretraining corpus is empty")
    return corpus
