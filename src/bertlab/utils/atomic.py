"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never
a truncated mix, even when the writer is killed with SIGKILL mid-write.

The bytes go to a temporary file in the same folder (``.<name>.tmp-<pid>-<n>``), are
flushed and fsync'ed, and the temporary file is renamed over the target with
``os.replace`` (atomic on POSIX file systems); the folder is fsync'ed so the rename
survives a crash of the machine. A failure before the rename removes the temporary file
and leaves the target untouched. Left-over temporary files of killed writers start with
``.`` and contain ``.tmp-``, so globs like ``*.ckpt`` never pick them up
(:func:`is_temp_file`).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "is_temp_file",
    "temp_path_for",
]

_COUNTER = itertools.count()
TMP_MARK = ".tmp-"


def temp_path_for(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARK}{os.getpid()}-{next(_COUNTER)}")


def is_temp_file(path: str | os.PathLike) -> bool:
    """True for the temporary files :func:`atomic_write` creates (complete or not)."""
    name = os.path.basename(os.fspath(path))
    return name.startswith(".") and TMP_MARK in name


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support fsync on folders
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], fsync: bool = True) -> None:
    """Call ``write(binary_file)`` on a temporary file, then rename it to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    if fsync:
        _fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    atomic_write(path, lambda fh: fh.write(data), fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, obj: Any, fsync: bool = True, **dump_kwargs: Any) -> None:
    dump_kwargs.setdefault("indent", 2)
    dump_kwargs.setdefault("ensure_ascii", False)
    atomic_write_text(path, json.dumps(obj, **dump_kwargs) + "\n", fsync=fsync)
