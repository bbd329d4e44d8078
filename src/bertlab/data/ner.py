"""Chinese NER data: character-level CoNLL files, tag schemes, splits, long-sentence cuts.

Pure Python (no torch). The corpora are described in ``data/README.md`` (NER section):

* People's Daily NER (china-people-daily-ner-corpus, the set bert4keras' NER example
  uses): ``example.dev`` and ``example.test``, ``BIO`` tags over ``PER``, ``LOC``, ``ORG``.
  Its train split is not available here, so (:func:`load_ner_splits`) train =
  ``example.test`` and validation / test = the odd / even sentences of ``example.dev``.
* Resume NER (Zhang & Yang 2018): ``{train,dev,test}.char.bmes``, ``BMES`` tags
  (``B-``, ``M-``, ``E-``, ``S-``, ``O``) over eight types.

File format: one ``char TAG`` a line (separated by blanks), a blank line between
sentences. The label set always comes from the caller (the config), never from the file.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bertlab.data.cws import PUNCTUATION
from bertlab.data.io import open_text_lines
from bertlab.metrics.entities import SCHEMES, extract_entities, parse_tag
from bertlab.utils.errors import DataError

__all__ = [
    "SCHEMES",
    "NER_DATASETS",
    "NerDataset",
    "NerSplits",
    "Sentence",
    "scheme_labels",
    "scheme_of_labels",
    "check_gold_tags",
    "read_conll_chars",
    "cut_spans",
    "split_tagged_sentence",
    "load_ner_splits",
]

log = logging.getLogger(__name__)

#: ``(first line number, characters, tags)`` of one sentence of a CoNLL file.
Sentence = tuple[int, list[str], list[str]]

_SCHEME_PREFIXES = {"BIO": ("B", "I"), "BMES": ("B", "M", "E", "S")}
# Fields are separated by runs of ASCII blanks only, so that an ideographic space (U+3000) or
# a no-break space stays a character (neither corpus has one).
_FIELD_SEP = re.compile(r"[ \t\f\v]+")


# --------------------------------------------------------------------------- schemes
def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; choose one of {SCHEMES}")


def scheme_labels(scheme: str, types: Sequence[str]) -> list[str]:
    """The label list of a scheme: ``"O"`` first, then every type's tags in order.

    ``scheme_labels("BIO", ["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]``
    (bert4keras' NER example numbering: type k has B = 2k+1, I = 2k+2);
    ``BMES`` gives ``B-X, M-X, E-X, S-X`` per type.

    Raises:
        ValueError: unknown scheme, no type, an empty / repeated type or one containing
            whitespace.
    """
    _check_scheme(scheme)
    types = list(types)
    if not types:
        raise ValueError("give at least one entity type")
    for t in types:
        if not isinstance(t, str) or not t or any(ch.isspace() for ch in t):
            raise ValueError(f"bad entity type {t!r}: a non-empty string without blanks")
    if len(set(types)) != len(types):
        raise ValueError(f"repeated entity types in {types}")
    return ["O"] + [f"{p}-{t}" for t in types for p in _SCHEME_PREFIXES[scheme]]


def scheme_of_labels(labels: Sequence[str]) -> str:
    """``"BIO"`` or ``"BMES"`` from a label list: BMES if any label starts with M-, E- or S-.

    Raises:
        ValueError: a label that is neither ``O`` nor ``P-TYPE``, prefixes of both schemes
            (``I-`` together with ``M-``/``E-``/``S-``), no ``O`` or repeated labels.
    """
    labels = list(labels)
    if "O" not in labels:
        raise ValueError(f"the label list must contain 'O': {labels}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"repeated labels in {labels}")
    prefixes = set()
    for lab in labels:
        if lab == "O":
            continue
        if not isinstance(lab, str) or len(lab) < 3 or lab[1] != "-" or lab[0] not in "BIMES":
            raise ValueError(f"label {lab!r} is neither 'O' nor B-/I-/M-/E-/S- followed by a type")
        prefixes.add(lab[0])
    bmes = prefixes & {"M", "E", "S"}
    if bmes and "I" in prefixes:
        raise ValueError(f"labels mix BIO (I-) and BMES ({'/'.join(sorted(bmes))}-) prefixes")
    return "BMES" if bmes else "BIO"


def check_gold_tags(tags: Sequence[str], scheme: str) -> tuple[int, str] | None:
    """First ill-formed position of a *gold* tag sequence, or None when it is well formed.

    * BIO: ``I-X`` must follow ``B-X`` or ``I-X``.
    * BMES: ``M-X`` / ``E-X`` must follow ``B-X`` or ``M-X``, and ``B-X`` / ``M-X`` must be
      followed by ``M-X`` or ``E-X`` (an entity cannot stay open at the end of a sentence).

    Returns:
        ``(index, message)`` of the first offending tag.
    """
    _check_scheme(scheme)
    prev = "O"
    for i, tag in enumerate(tags):
        p, t = tag[0], tag[2:]
        open_prev = prev != "O" and prev[0] in ("B", "I", "M")
        if scheme == "BIO":
            if p == "I" and not (open_prev and prev[2:] == t):
                return i, f"{tag} does not continue an entity (previous tag {prev}): expected B-{t} or I-{t} before it"
        else:
            if open_prev and not (p in ("M", "E") and prev[2:] == t):
                return i - 1, f"{prev} is not closed: the next tag is {tag}, not M-{prev[2:]} or E-{prev[2:]}"
            if p in ("M", "E") and not (open_prev and prev[2:] == t):
                return i, f"{tag} does not continue an entity (previous tag {prev}): expected B-{t} or M-{t} before it"
        prev = tag
    if scheme == "BMES" and prev != "O" and prev[0] in ("B", "M"):
        return len(tags) - 1, f"{prev} is not closed: the sentence ends, expected M-{prev[2:]} or E-{prev[2:]} next"
    return None


# --------------------------------------------------------------------------- reading
def _continues(last_tag: str, first_tag: str, scheme: str) -> bool:
    """Whether ``first_tag`` (start of a sentence) continues the entity open at ``last_tag``."""
    if last_tag == "O" or first_tag == "O" or last_tag[2:] != first_tag[2:]:
        return False
    if scheme == "BIO":
        return last_tag[0] in ("B", "I") and first_tag[0] == "I"
    return last_tag[0] in ("B", "M") and first_tag[0] in ("M", "E")


def read_conll_chars(
    path: str | os.PathLike,
    labels: Sequence[str],
    *,
    scheme: str | None = None,
    gold: bool = True,
    join_broken_entities: bool = False,
) -> list[Sentence]:
    """Read a character-level CoNLL file: ``char TAG`` a line, blank lines between sentences.

    Args:
        path: the file (``.xz``/``.gz``/``.bz2`` decompressed on the fly; CRLF line ends and a
            UTF-8 byte-order mark are accepted, see :func:`~bertlab.data.io.open_text_lines`).
        labels: the allowed tags (from the config); a tag outside them is an error.
        scheme: ``"BIO"`` or ``"BMES"``; inferred from ``labels`` when None
            (:func:`scheme_of_labels`).
        gold: check that every entity is well formed (:func:`check_gold_tags`); turn it off
            to read model predictions.
        join_broken_entities: when a sentence ends inside an entity and the next sentence
            starts by continuing it (same type; BIO ``I-``, BMES ``M-``/``E-``), merge the two
            sentences into one (logged at INFO level with file and line) instead of raising.
            Resume's ``train.char.bmes`` needs it twice (see the data card).

    Returns:
        ``[(first line number, chars, tags)]``, one entry per sentence, in file order.
        Runs of empty lines (or lines of ASCII blanks only) separate sentences; the last
        sentence needs no trailing blank line. Fields are separated by ASCII blanks, so a
        full-width space (U+3000) can be a character.

    Raises:
        DataError (naming file and line): a line that is not exactly two blank-separated
            fields with a one-character first field, a tag outside ``labels``, an ill-formed
            entity (``gold=True``), or a file without any sentence.
        ValueError: a bad ``labels`` list or ``scheme``.
    """
    inferred = scheme_of_labels(labels)
    if scheme is None:
        scheme = inferred
    _check_scheme(scheme)
    for label in labels:
        parse_tag(label, scheme)  # ValueError for a label that is not a tag of the scheme
    allowed = frozenset(labels)

    # raw sentences with the line number of every token
    raw: list[tuple[list[int], list[str], list[str]]] = []
    lines: list[int] = []
    chars: list[str] = []
    tags: list[str] = []
    for lineno, line in open_text_lines(path):
        fields = [f for f in _FIELD_SEP.split(line) if f]
        if not fields:
            if chars:
                raw.append((lines, chars, tags))
                lines, chars, tags = [], [], []
            continue
        if len(fields) != 2:
            raise DataError(path, lineno, f"expected 'char TAG' (two blank-separated fields), got {line!r}")
        char, tag = fields
        if len(char) != 1:
            raise DataError(path, lineno, f"expected one character before the tag, got {char!r}")
        if tag not in allowed:
            raise DataError(path, lineno, f"tag {tag!r} is not one of the configured labels {sorted(allowed)}")
        lines.append(lineno)
        chars.append(char)
        tags.append(tag)
    if chars:
        raw.append((lines, chars, tags))
    if not raw:
        raise DataError(path, None, "file holds no sentence")

    if join_broken_entities:
        merged = [raw[0]]
        for sent in raw[1:]:
            prev = merged[-1]
            if _continues(prev[2][-1], sent[2][0], scheme):
                log.info(
                    "%s:%d: sentence joined with the previous one (entity %s continues across a blank line)",
                    path,
                    sent[0][0],
                    sent[2][0],
                )
                merged[-1] = (prev[0] + sent[0], prev[1] + sent[1], prev[2] + sent[2])
            else:
                merged.append(sent)
        raw = merged

    out: list[Sentence] = []
    for lines, chars, tags in raw:
        if gold:
            bad = check_gold_tags(tags, scheme)
            if bad is not None:
                idx, message = bad
                hint = ""
                if idx in (0, len(tags) - 1):
                    hint = " (an entity split by a blank line? see join_broken_entities)"
                raise DataError(path, lines[idx], f"ill-formed {scheme} entity: {message}{hint}")
        out.append((lines[0], chars, tags))
    return out


# --------------------------------------------------------------------------- splitting
def _cut_after_punct(chars: Sequence[str], p: int) -> bool:
    """A cut before position ``p`` follows punctuation (and does not split a run like ``……``)."""
    return chars[p - 1] in PUNCTUATION and (p >= len(chars) or chars[p] != chars[p - 1])


def cut_spans(
    chars: Sequence[str], max_len: int, tags: Sequence[str] | None = None, scheme: str = "BIO"
) -> list[tuple[int, int]]:
    """Where to cut a sentence into pieces of at most ``max_len`` characters.

    Greedy from the left, each piece as long as possible, ending (in this order of
    preference) after the last punctuation mark (:data:`bertlab.data.cws.PUNCTUATION`, not
    inside a run of the same mark) that fits and is not inside an entity, else at the last
    position that is not inside an entity, else (only when an entity is longer than
    ``max_len``) hard at ``max_len``. Entities are read from ``tags`` with
    :func:`~bertlab.metrics.entities.extract_entities`; without tags only the punctuation
    rule and the hard cut apply. A cut at position ``p`` is inside an entity when some
    entity ``[s, e)`` has ``s < p < e``.

    Returns:
        ``[(start, end)]`` half-open spans that tile ``range(len(chars))``; ``[]`` for an
        empty sentence.

    Raises:
        ValueError: ``max_len`` not a positive integer, or ``len(tags) != len(chars)``.
    """
    if int(max_len) != max_len or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    n = len(chars)
    inside = [False] * (n + 1)  # inside[p]: a cut before position p would split an entity
    if tags is not None:
        if len(tags) != n:
            raise ValueError(f"{len(tags)} tags for {n} characters")
        for _, s, e in extract_entities(tags, scheme):
            for p in range(s + 1, e):
                inside[p] = True
    spans: list[tuple[int, int]] = []
    start = 0
    while n - start > max_len:
        window = range(start + max_len, start, -1)
        end = next((p for p in window if not inside[p] and _cut_after_punct(chars, p)), None)
        if end is None:
            end = next((p for p in window if not inside[p]), start + max_len)
        spans.append((start, end))
        start = end
    if start < n:
        spans.append((start, n))
    return spans


def _retag_cut(tags: list[str], p: int, scheme: str) -> None:
    """Make both sides of a cut before position ``p`` well formed (a cut inside an entity)."""
    left, right = tags[p - 1], tags[p]
    if scheme == "BIO":
        if right[0] == "I":
            tags[p] = "B" + right[1:]
        return
    if left[0] == "B":
        tags[p - 1] = "S" + left[1:]
    elif left[0] == "M":
        tags[p - 1] = "E" + left[1:]
    if right[0] == "M":
        tags[p] = "B" + right[1:]
    elif right[0] == "E":
        tags[p] = "S" + right[1:]


def split_tagged_sentence(
    chars: Sequence[str], tags: Sequence[str], max_len: int, scheme: str = "BIO"
) -> list[tuple[list[str], list[str]]]:
    """Cut a tagged sentence into ``(chars, tags)`` pieces of at most ``max_len`` characters.

    Cuts as :func:`cut_spans` says, so no entity is cut unless it is longer than
    ``max_len`` (then, only then, the tags next to the cut are rewritten so that each piece
    holds a well-formed entity: BIO ``I-X -> B-X`` after the cut; BMES ``B-X -> S-X`` /
    ``M-X -> E-X`` before it and ``M-X -> B-X`` / ``E-X -> S-X`` after it). The pieces'
    characters always join to ``chars``; with no over-long entity their tags join to ``tags``.
    """
    tags = list(tags)
    spans = cut_spans(chars, max_len, tags, scheme)
    ents = extract_entities(tags, scheme)
    for s, _ in spans[1:]:
        if any(es < s < ee for _, es, ee in ents):
            _retag_cut(tags, s, scheme)
    return [(list(chars[s:e]), tags[s:e]) for s, e in spans]


# --------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class NerDataset:
    """Where a NER corpus lives under ``data_dir`` and how it is tagged."""

    folder: str  #: relative to ``data_dir``
    scheme: str
    types: tuple[str, ...]
    files: dict[str, str]  #: file name per role ("train", "val", "test" or "dev")
    join_broken_entities: bool = False


NER_DATASETS: dict[str, NerDataset] = {
    "peoples_daily": NerDataset(
        folder="ner/peoples_daily",
        scheme="BIO",
        types=("PER", "LOC", "ORG"),  # bert4keras' order
        files={"train": "example.test", "dev": "example.dev"},
    ),
    "resume": NerDataset(
        folder="ner/resume",
        scheme="BMES",
        types=("NAME", "ORG", "TITLE", "EDU", "PRO", "CONT", "LOC", "RACE"),
        files={"train": "train.char.bmes", "val": "dev.char.bmes", "test": "test.char.bmes"},
        join_broken_entities=True,
    ),
}


@dataclass
class NerSplits:
    """Train / validation / test sentences of one NER corpus."""

    name: str
    scheme: str
    labels: list[str]
    train: list[Sentence]
    val: list[Sentence]
    test: list[Sentence]
    sources: dict[str, str] = field(default_factory=dict)

    def stats(self) -> dict[str, int]:
        """Sentence, character and entity counts per split, entities also per type."""
        out: dict[str, int] = {}
        for split in ("train", "val", "test"):
            sents = getattr(self, split)
            out[f"{split}_sentences"] = len(sents)
            out[f"{split}_chars"] = sum(len(c) for _, c, _ in sents)
            out[f"{split}_max_len"] = max((len(c) for _, c, _ in sents), default=0)
            types = Counter(t for _, _, tags in sents for t, _, _ in extract_entities(tags, self.scheme))
            out[f"{split}_entities"] = sum(types.values())
            for t in sorted(types):
                out[f"{split}_entities_{t}"] = types[t]
        return out


def _find_file(folder: Path, name: str) -> Path:
    """``folder/name.xz`` (the shipped copy) or else ``folder/name``."""
    for candidate in (folder / f"{name}.xz", folder / name):
        if candidate.is_file():
            return candidate
    raise DataError(folder / f"{name}.xz", None, f"file not found (nor {name} uncompressed)")


#: People's Daily split rules (``split`` of :func:`load_ner_splits`)
PD_SPLITS = ("test_train", "dev_train")


def load_ner_splits(
    name: str, data_dir: str | os.PathLike, labels: Sequence[str] | None = None, split: str = "test_train"
) -> NerSplits:
    """Read a shipped NER corpus and build its train / validation / test splits.

    Args:
        name: ``"peoples_daily"`` or ``"resume"`` (see :data:`NER_DATASETS`).
        data_dir: the folder holding ``ner/<name>/`` (the repo's ``data/``); each file is
            read as ``<file>.xz`` if present, else uncompressed.
        labels: the label list (from the config); default ``scheme_labels(scheme, types)``.

    Rules (deterministic):

    * ``peoples_daily`` with ``split="test_train"`` (default, the data card's): train = all of
      ``example.test``; validation = the sentences of ``example.dev`` at odd positions (1st,
      3rd, 5th, ...), test = those at even positions (2nd, 4th, ...). With
      ``split="dev_train"``: train = ``example.dev`` without every 10th sentence, validation =
      every 10th sentence of it (10th, 20th, ...: a held-out 10%), test = all of
      ``example.test`` (a larger test set, a smaller training set).
    * ``resume``: train / validation / test = ``train`` / ``dev`` / ``test.char.bmes``; the
      two sentences of the train file that end inside an entity are joined with the next
      one (``join_broken_entities``).

    Raises:
        ValueError: unknown name, or a ``split`` rule other than the default for Resume / not in
            :data:`PD_SPLITS`.
        DataError: missing or malformed files (see :func:`read_conll_chars`).
    """
    if name not in NER_DATASETS:
        raise ValueError(f"unknown NER data set {name!r}; choose one of {sorted(NER_DATASETS)}")
    if split not in PD_SPLITS or (name != "peoples_daily" and split != PD_SPLITS[0]):
        allowed = PD_SPLITS if name == "peoples_daily" else PD_SPLITS[:1]
        raise ValueError(f"unknown split rule {split!r} for {name}; choose one of {list(allowed)}")
    ds = NER_DATASETS[name]
    labels = list(labels) if labels is not None else scheme_labels(ds.scheme, ds.types)
    folder = Path(data_dir) / ds.folder
    paths = {role: _find_file(folder, fname) for role, fname in ds.files.items()}

    def read(role: str) -> list[Sentence]:
        return read_conll_chars(paths[role], labels, scheme=ds.scheme, join_broken_entities=ds.join_broken_entities)

    if name == "peoples_daily" and split == "dev_train":
        dev = read("dev")
        train, val, test = [s for i, s in enumerate(dev) if i % 10 != 9], dev[9::10], read("train")
    elif name == "peoples_daily":
        dev = read("dev")
        train, val, test = read("train"), dev[0::2], dev[1::2]
    else:
        train, val, test = read("train"), read("val"), read("test")
    return NerSplits(
        name=name,
        scheme=ds.scheme,
        labels=labels,
        train=train,
        val=val,
        test=test,
        sources={role: str(p) for role, p in paths.items()},
    )
