"""Readers for relation-triple data: LIC2019 / DuIE 1.0 and DuIE 2.0 (methods.md section 5).

Records are JSON lines ``{"text": ..., "spo_list": [{"subject", "predicate", "object", ...}]}``.
DuIE 2.0 wraps objects as ``{"@value": ..., <other slots>}``; only ``@value`` is used (the
post's single-object triples), other slots (``inWork``, ``onDate``, ...) are counted in
``stats["object_slots_ignored"]``. Schemas: LIC2019 ships one JSON object a line, DuIE 2.0
one JSON array (possibly pretty-printed over many lines); both give the predicate list in
file order with duplicates removed (LIC2019's 50 schemas hold 49 predicates, as in the post).

Every malformed record is a :class:`DataError` naming the file and the 1-based line: a line
that is not JSON, a missing or non-string ``text``, a ``spo_list`` that is not a list, an
spo entry that is not an object or has an empty subject, predicate or object, and a
predicate absent from the schema. Blank lines are skipped. Locating the triples in the
tokenized text (and counting those that cannot be found) is the DataModule's job.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bertlab.data.io import open_text_lines
from bertlab.utils.errors import DataError

__all__ = ["Triple", "TripleRecord", "read_schema", "read_triples"]

#: (subject, predicate, object) as strings of the data file
Triple = tuple[str, str, str]


@dataclass
class TripleRecord:
    text: str
    spo_list: list[Triple]
    #: where the record came from (file, 1-based line), for messages
    path: str = ""
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _detect_format(path: str | os.PathLike) -> str:
    for _, line in open_text_lines(path):
        stripped = line.strip()
        if stripped:
            return "array" if stripped.startswith("[") else "lines"
    raise DataError(path, None, "schema file is empty")


def _schema_predicate(path: str | os.PathLike, line: int | None, obj: Any) -> str:
    if not isinstance(obj, dict):
        raise DataError(path, line, f"a schema must be a JSON object, got {type(obj).__name__}")
    pred = obj.get("predicate")
    if not isinstance(pred, str) or not pred.strip():
        raise DataError(path, line, "schema without a non-empty string 'predicate'")
    return pred


def read_schema(path: str | os.PathLike) -> list[str]:
    """Predicates of a schema file, in file order, duplicates removed.

    Accepts LIC2019's one-JSON-object-a-line file and DuIE 2.0's single JSON array.
    """
    preds: list[str] = []
    if _detect_format(path) == "array":
        text = "\n".join(line for _, line in open_text_lines(path))
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, err.lineno, f"not valid JSON: {err.msg}") from None
        if not isinstance(items, list):
            raise DataError(path, 1, "expected a JSON array of schemas")
        # line numbers of the array's items are not kept by json; name the item instead
        for i, obj in enumerate(items):
            try:
                preds.append(_schema_predicate(path, None, obj))
            except DataError as err:
                raise DataError(path, None, f"schema item {i}: {err.message}") from None
    else:
        for num, line in open_text_lines(path):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(path, num, f"not valid JSON: {err.msg}") from None
            preds.append(_schema_predicate(path, num, obj))
    out = list(dict.fromkeys(preds))
    if not out:
        raise DataError(path, None, "no schema found")
    return out


def _span_value(value: Any, what: str, path: str | os.PathLike, num: int, stats: Counter) -> str:
    if isinstance(value, dict):  # DuIE 2.0: {"@value": ..., "inWork": ...}
        if "@value" not in value:
            raise DataError(path, num, f"{what} is an object without '@value'")
        stats["object_slots_ignored"] += len(value) - 1
        value = value["@value"]
    if not isinstance(value, str):
        raise DataError(path, num, f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(path, num, f"empty {what} in spo_list")
    return value


def read_triples(
    path: str | os.PathLike,
    predicates: list[str] | set[str] | None = None,
    require_spo: bool = True,
) -> tuple[list[TripleRecord], dict[str, int]]:
    """Records of a LIC2019 / DuIE JSON-lines file and reading statistics.

    Args:
        predicates: the schema's predicates; a triple with another predicate is an error.
        require_spo: a record without ``spo_list`` is an error (else it reads as no triple).
    Returns:
        (records, stats) with ``records``, ``triples``, ``object_slots_ignored``.
    """
    allowed = set(predicates) if predicates is not None else None
    stats: Counter = Counter()
    records: list[TripleRecord] = []
    for num, line in open_text_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, num, f"not valid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(path, num, f"a record must be a JSON object, got {type(obj).__name__}")
        text = obj.get("text")
        if not isinstance(text, str):
            raise DataError(path, num, "record without a string 'text'")
        if "spo_list" not in obj:
            if require_spo:
                raise DataError(path, num, "record without 'spo_list'")
            spo_raw: list[Any] = []
        else:
            spo_raw = obj["spo_list"]
        if not isinstance(spo_raw, list):
            raise DataError(path, num, f"'spo_list' must be a list, got {type(spo_raw).__name__}")
        spo: list[Triple] = []
        for k, item in enumerate(spo_raw):
            if not isinstance(item, dict) or not item:
                raise DataError(path, num, f"spo_list entry {k} is empty or not an object: {item!r}")
            missing = [key for key in ("subject", "predicate", "object") if key not in item]
            if missing:
                raise DataError(path, num, f"spo_list entry {k} lacks {', '.join(missing)}")
            s = _span_value(item["subject"], "subject", path, num, stats)
            p = _span_value(item["predicate"], "predicate", path, num, stats)
            o = _span_value(item["object"], "object", path, num, stats)
            if allowed is not None and p not in allowed:
                raise DataError(path, num, f"predicate {p!r} is not in the schema")
            spo.append((s, p, o))
        stats["triples"] += len(spo)
        records.append(TripleRecord(text, spo, str(path), num))
    stats["records"] = len(records)
    if not records:
        raise DataError(path, None, "no record found")
    return records, dict(stats)
