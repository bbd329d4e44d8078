"""Checks the command-line tools (predict, generate, evaluate) make before loading a model.

* :func:`check_output_file`: an ``output=`` path must be writable (its folder exists, it is
  not a directory, not read-only) and must not be one of the inputs (``output=X input=X``
  would overwrite the input) -- checked before the checkpoint is read, so a bad path costs
  nothing;
* :func:`check_output_dir`: the same for a folder the tool writes into (evaluate's run folder).

Every failure is a :class:`ConfigError` naming the key (one line, exit status 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from bertlab.utils.errors import ConfigError

__all__ = ["check_output_file", "check_output_dir"]


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_output_file(path: Any, inputs: Iterable[Any] = (), key: str = "output") -> None:
    """Refuse an output file that cannot be written or that is one of ``inputs``."""
    if path is None or str(path) == "":
        return
    path = os.path.expanduser(str(path))
    for inp in inputs:
        if inp is not None and str(inp) and _same_file(path, os.path.expanduser(str(inp))):
            raise ConfigError(key, f"{path} is also an input file ({inp}): writing it would overwrite the input")
    if os.path.isdir(path):
        raise ConfigError(key, f"{path} is a directory: give a file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(key, f"{path}: the folder {parent} does not exist")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ConfigError(key, f"{path} is not writable (read-only file)")
    if not os.path.exists(path) and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(key, f"{path}: the folder {parent} is not writable")


def check_output_dir(path: Any, inputs: Iterable[Any] = (), writes: Sequence[str] = (), key: str = "hydra.run.dir"):
    """Refuse an output folder that is a file or not writable, or one whose files ``writes``
    (relative names; a name ending in ``/`` is a folder) would be one of ``inputs``."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(key, f"{path} is a file, not a folder")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(key, f"{path}: {probe} is not writable")
    for inp in inputs:
        if inp is None or not str(inp) or not os.path.exists(str(inp)):
            continue
        real = os.path.realpath(str(inp))
        for name in writes:
            target = os.path.realpath(os.path.join(path, name))
            if real == target or (name.endswith("/") and real.startswith(target + os.sep)):
                raise ConfigError(key, f"{os.path.join(path, name)} would overwrite the input file {inp}")
