"""Entity (chunk) scores for NER, decoded exactly like seqeval's default mode.

Pure Python (no seqeval at run time; the tests check agreement with seqeval 1.2.2).

Decoding (:func:`extract_entities`) replays ``seqeval.metrics.sequence_labeling.get_entities``
(the default, non-strict, conlleval-compatible mode), so that ill-formed *predicted*
sequences are read the way everyone reports them:

* ``BIO``: tags ``O``, ``B-X``, ``I-X``. An ``I-X`` that does not continue an ``X`` entity
  (after ``O``, after another type) starts a new entity; a change of type ends one.
* ``BMES``: tags ``O``, ``B-X``, ``M-X``, ``E-X``, ``S-X``. seqeval does not know the
  letter ``M`` (its IOBES reading uses ``I`` for the inside of an entity: it warns
  "M-X seems not to be NE tag" and, worse, never closes or opens an entity on ``M``, so
  that e.g. ``B-X M-X B-X E-X`` loses its first entity). ``M-`` is therefore read as
  ``I-``: the BMES result equals seqeval's on the same tags with ``M-`` replaced by ``I-``.
  On well-formed BMES the result is the obvious one (``B M* E`` and ``S`` entities).

Strict mode (``mode="strict"``, the default of :func:`entity_scores`) replays seqeval's
``mode="strict"`` with ``scheme=IOB2`` (BIO) or ``scheme=IOBES`` (BMES, ``M-`` read as
``I-``): only well-formed chunks count. BIO: ``B-X I-X*`` (an ``I-X`` without its ``B-X``
is no entity, a type change ends the chunk). BMES: ``S-X`` or ``B-X M-X* E-X`` (a ``B`` not
closed by an ``E`` of its type is no entity, and its ``M`` tags are skipped).

Scores (:func:`entity_scores`): an entity is correct when its type, start and end equal a
gold entity's of the same sentence; precision = correct / predicted entities, recall =
correct / gold entities, F1 = 2PR/(P+R), all micro-averaged over the corpus, plus the same
per type; an undefined ratio is 0.0 (seqeval's ``zero_division=0``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MODES", "SCHEMES", "parse_tag", "extract_entities", "entity_scores", "entities_from_tags"]

MODES: tuple[str, ...] = ("strict", "default")

SCHEMES: tuple[str, ...] = ("BIO", "BMES")
_PREFIXES = {"BIO": frozenset("BI"), "BMES": frozenset("BMES")}


def _check_scheme(scheme: str) -> None:
    if scheme not in _PREFIXES:
        raise ValueError(f"unknown tag scheme {scheme!r}; choose one of {SCHEMES}")


def parse_tag(tag: str, scheme: str) -> tuple[str, str | None]:
    """``(prefix, type)`` of one tag: ``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", None)``.

    Raises:
        ValueError: an unknown scheme, or a tag that is not ``O`` nor ``P-TYPE`` with a prefix
            of the scheme (BIO: B, I; BMES: B, M, E, S) and a non-empty type.
    """
    _check_scheme(scheme)
    if tag == "O":
        return "O", None
    if not isinstance(tag, str) or len(tag) < 3 or tag[1] != "-" or tag[0] not in _PREFIXES[scheme]:
        raise ValueError(f"{tag!r} is not a {scheme} tag (O or {'/'.join(sorted(_PREFIXES[scheme]))}-TYPE)")
    return tag[0], tag[2:]


# seqeval's end_of_chunk / start_of_chunk, with M already mapped to I
def _ends(prev_tag: str, tag: str, prev_type: str | None, type_: str | None) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != type_


def _starts(prev_tag: str, tag: str, prev_type: str | None, type_: str | None) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_type != type_


def _strict_entities(parsed: list[tuple[str, str | None]], scheme: str) -> list[tuple[str, int, int]]:
    """seqeval's strict ``Tokens.entities`` (IOB2 / IOBES with M = I), end-exclusive offsets."""
    ext = [("I" if tag == "M" else tag, t) for tag, t in parsed] + [("O", None)]
    starts = ("B",) if scheme == "BIO" else ("B", "S")
    inside = {("B", "I"), ("I", "I")} if scheme == "BIO" else {("B", "I"), ("B", "E"), ("I", "I"), ("I", "E")}
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(ext):
        tag, type_ = ext[i]
        if tag not in starts:
            i += 1
            continue
        end, prev = i + 1, ext[i]
        while (prev[0], ext[end][0]) in inside and ext[end][1] == prev[1]:
            prev, end = ext[end], end + 1
        last, nxt = ext[end - 1], ext[end]
        if scheme == "BIO":
            ok = nxt[0] in ("O", "B") or nxt[1] != last[1]  # IOB2 end patterns
        else:
            ok = last[0] in ("S", "E")  # IOBES end patterns
        if ok:
            out.append((type_, i, end))  # type: ignore[arg-type]
        i = end
    return out


def extract_entities(tags: Sequence[str], scheme: str = "BIO", mode: str = "default") -> list[tuple[str, int, int]]:
    """Entities ``(type, start, end_exclusive)`` of one tag sequence, in order of their ends.

    Exactly seqeval's ``get_entities`` (default mode) with end-exclusive offsets; for
    ``BMES`` the ``M-`` tags are read as ``I-`` (see the module docstring).

    >>> extract_entities(["B-PER", "I-PER", "O", "I-LOC"], "BIO")
    [('PER', 0, 2), ('LOC', 3, 4)]
    >>> extract_entities(["B-ORG", "M-ORG", "E-ORG", "S-NAME"], "BMES")
    [('ORG', 0, 3), ('NAME', 3, 4)]

    Raises:
        ValueError: a tag that is not a tag of ``scheme`` (see :func:`parse_tag`).
    """
    parsed = [parse_tag(t, scheme) for t in tags]
    if mode == "strict":
        return _strict_entities(parsed, scheme)
    if mode != "default":
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    entities: list[tuple[str, int, int]] = []
    prev_tag, prev_type, begin = "O", None, 0
    for i, (tag, type_) in enumerate([*parsed, ("O", None)]):
        if tag == "M":
            tag = "I"
        if _ends(prev_tag, tag, prev_type, type_):
            entities.append((prev_type, begin, i))  # type: ignore[arg-type]
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return entities


def _prf(n_correct: int, n_pred: int, n_gold: int) -> dict:
    p = n_correct / n_pred if n_pred else 0.0
    r = n_correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "n_pred": n_pred, "n_gold": n_gold, "n_correct": n_correct}


def entity_scores(
    pred_tag_seqs: Sequence[Sequence[str]],
    gold_tag_seqs: Sequence[Sequence[str]],
    scheme: str = "BIO",
    mode: str = "strict",
) -> dict:
    """Micro precision / recall / F1 of predicted entities against the gold ones.

    Both sides are decoded with :func:`extract_entities` in ``mode`` (the same reading), so the
    numbers equal seqeval's ``precision_score`` / ``recall_score`` / ``f1_score`` with
    ``mode="strict"`` and ``scheme=IOB2`` / ``IOBES`` (``mode="default"``: seqeval's default
    mode); BMES: on the tags with ``M-`` read as ``I-``. The dict names its ``mode``.

    Returns:
        ``{"precision", "recall", "f1", "n_pred", "n_gold", "n_correct", "n_sentences",
        "per_type": {type: {"precision", "recall", "f1", "n_pred", "n_gold", "n_correct"}}}``;
        ``per_type`` holds every type seen in the gold or the predictions, sorted; ratios
        are 0.0 when undefined.

    Raises:
        ValueError: different numbers of sentences, a sentence whose predicted and gold
            tag sequences differ in length (named by its 0-based index), or a bad tag.
    """
    if len(pred_tag_seqs) != len(gold_tag_seqs):
        raise ValueError(f"{len(pred_tag_seqs)} predicted sentences but {len(gold_tag_seqs)} gold sentences")
    counts: dict[str, list[int]] = {}  # type -> [n_correct, n_pred, n_gold]
    for idx, (pred, gold) in enumerate(zip(pred_tag_seqs, gold_tag_seqs)):
        if len(pred) != len(gold):
            raise ValueError(f"sentence index {idx}: {len(pred)} predicted tags but {len(gold)} gold tags")
        p_ents = set(extract_entities(pred, scheme, mode))
        g_ents = set(extract_entities(gold, scheme, mode))
        for ent in p_ents:
            counts.setdefault(ent[0], [0, 0, 0])[1] += 1
        for ent in g_ents:
            counts.setdefault(ent[0], [0, 0, 0])[2] += 1
        for ent in p_ents & g_ents:
            counts[ent[0]][0] += 1
    n_correct = sum(c[0] for c in counts.values())
    n_pred = sum(c[1] for c in counts.values())
    n_gold = sum(c[2] for c in counts.values())
    out = _prf(n_correct, n_pred, n_gold)
    out["n_sentences"] = len(gold_tag_seqs)
    out["mode"] = mode
    out["per_type"] = {t: _prf(*counts[t]) for t in sorted(counts)}
    return out


def entities_from_tags(text: str, tags: Sequence[str], scheme: str = "BIO") -> list[dict]:
    """Entities of a tagged text with character offsets, for the predict command.

    Returns:
        ``[{"type", "start", "end", "text"}]`` sorted by start, ``end`` exclusive, so that
        ``text[start:end] == entity["text"]``.

    Raises:
        ValueError: ``len(tags) != len(text)`` or a bad tag.
    """
    if len(tags) != len(text):
        raise ValueError(f"{len(tags)} tags for a text of {len(text)} characters")
    ents = sorted(extract_entities(tags, scheme), key=lambda e: (e[1], e[2]))
    return [{"type": t, "start": s, "end": e, "text": text[s:e]} for t, s, e in ents]
