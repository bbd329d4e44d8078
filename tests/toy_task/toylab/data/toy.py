"""The toy task's reader (docs/architecture.md, "Adding a task", step 1): one example a line,
``<label id><TAB><text>``; a bad line is a DataError naming its file and line."""

from __future__ import annotations

import os

from bertlab.utils.errors import DataError


def read_toy(path: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """``(text, label id)`` per line of ``path``."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            label, sep, text = line.rstrip("\n").partition("\t")
            if not sep or not label.isdigit() or not text:
                raise DataError(str(path), lineno, "expected '<label id><TAB><text>'")
            rows.append((text, int(label)))
    return rows
