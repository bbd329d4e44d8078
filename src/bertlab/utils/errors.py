"""Errors that bertlab reports to the user as one clear line.

Every error a user can cause (bad data, a bad config key, a missing checkpoint) is a
``BertlabError``; the command-line entry points print ``str(err)`` on one line and exit
with a non-zero status instead of showing a traceback.
"""

from __future__ import annotations

import os


class BertlabError(Exception):
    """Base class of user-facing errors (printed as one line, exit status 2)."""


class DataError(BertlabError, ValueError):
    """A problem in an input file, located by path and (1-based) line number."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(BertlabError, ValueError):
    """A bad configuration value, named by its dotted key."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}")


class CheckpointError(BertlabError, FileNotFoundError):
    """A checkpoint or pretrained-model path that is missing or not a model."""


class StorageFullError(BertlabError, OSError):
    """The disk (or quota) is full while writing a run's files or an output."""

    def __init__(self, path: str | None, detail: str):
        self.path = path
        where = f"writing {path}" if path else "writing the run's files"
        super().__init__(f"{detail} {where}: free some space, or write elsewhere (paths.log_dir=..., output=...)")
