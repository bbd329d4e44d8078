"""The job log ``<run folder>/<task_name>.log`` is written only once the run owns its folder.

Hydra opens its job-log file handler when a job starts, before ``bertlab.train`` has read the
data, taken the folder's lock or checked a resume: a refused start would append to (or create)
the log of a folder it must leave untouched. conf/hydra/default.yaml therefore configures the
file handler as :class:`DeferredFileHandler`: it holds the records of the start-up in memory
(at most :data:`MAX_HELD`) and writes them, then everything after, once :func:`open_job_log` is
called, which ``train`` does after the lock is held and the resume is known valid (and
``evaluate`` once its checks passed). A refused start writes nothing: its one error line is on
stderr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["DeferredFileHandler", "open_job_log", "no_folder_on_refusal", "MAX_HELD"]

#: records held before the log opens (the rest of a long start-up is dropped, counted in the log)
MAX_HELD = 10_000


class DeferredFileHandler(logging.FileHandler):
    """A ``logging.FileHandler`` that creates and writes its file only after :meth:`open_now`."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None, delay: bool = True) -> None:
        super().__init__(filename, mode=mode, encoding=encoding, delay=True)
        self._held: list[logging.LogRecord] | None = []
        self._dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self._held is None:
            super().emit(record)
        elif len(self._held) < MAX_HELD:
            self._held.append(record)
        else:
            self._dropped += 1

    def open_now(self) -> None:
        """Write the held records, then every later one, to the file."""
        if self._held is None:
            return
        held, self._held = self._held, None
        for record in held:
            super().emit(record)
        if self._dropped:
            super().emit(
                logging.LogRecord(
                    __name__,
                    logging.WARNING,
                    __file__,
                    0,
                    "%d start-up log records were not kept",
                    (self._dropped,),
                    None,
                )
            )


def open_job_log() -> None:
    """Open every deferred job-log handler of the root logger (a no-op without one)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, DeferredFileHandler):
            handler.open_now()


@contextmanager
def no_folder_on_refusal(run_dir: str) -> Iterator[None]:
    """``with no_folder_on_refusal(run_dir): <checks before the run owns its folder>``: when a
    check raises and the folder was empty on entry (Hydra made it for this start), the folder
    is removed again, so a refused start leaves no run folder behind. A folder that held
    anything is left as it was (``os.rmdir`` removes only an empty folder)."""
    fresh = not os.path.isdir(run_dir) or not os.listdir(run_dir)
    try:
        yield
    except BaseException:
        if fresh:
            with suppress(OSError):  # not empty (another process's lock, a file written since): keep it
                os.rmdir(run_dir)
        raise
