"""``status.json`` in a run folder: whether the run is running, done or failed (and why).

Written atomically (:mod:`bertlab.utils.atomic`) at the start of a run (``running``) and
at its end: ``done`` only after ``metrics.json`` is complete, ``failed`` with a one-line
``error`` otherwise. A folder whose status is ``running`` but whose process (``pid`` on
``host``) is gone was killed (SIGKILL, out of memory, a cluster pre-emption):
:func:`read_status` reports it as ``killed``. A run folder counts as finished only when its
status is ``done`` **and** its ``metrics.json`` exists.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bertlab.utils.atomic import atomic_write_json
from bertlab.utils.processes import pid_alive

__all__ = ["STATUS_FILE", "RunStatus", "read_status", "is_finished", "one_line", "mark_failed", "failed_on_error"]

STATUS_FILE = "status.json"


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` (at most 500 characters)."""
    text = str(err).strip().splitlines()
    msg = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    return msg[:500]


class RunStatus:
    def __init__(self, run_dir: str | os.PathLike, **info: Any):
        self.path = os.path.join(os.fspath(run_dir), STATUS_FILE)
        self.info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), **info}

    def _write(self, status: str, **extra: Any) -> None:
        atomic_write_json(self.path, {"status": status, **self.info, **extra}, default=str)

    def running(self, **extra: Any) -> None:
        self._write("running", **extra)

    def done(self, **extra: Any) -> None:
        self._write("done", finished=_now(), **extra)

    def interrupted(self, reason: str, **extra: Any) -> None:
        """Stopped on a signal after saving a resumable checkpoint (``ckpt_path=last`` goes on)."""
        self._write("interrupted", finished=_now(), error=reason, **extra)

    def failed(self, error: BaseException | str, **extra: Any) -> None:
        msg = error if isinstance(error, str) else one_line(error)
        self._write("failed", finished=_now(), error=msg, **extra)


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status dict; ``{"status": "unknown"}`` without a readable status.json, and
    ``killed`` for a ``running`` run whose process no longer exists on this host."""
    path = os.path.join(os.fspath(run_dir), STATUS_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            status = json.load(fh)
        if not isinstance(status, dict) or "status" not in status:
            raise ValueError("no status")
    except (OSError, ValueError):
        return {"status": "unknown"}
    if (
        status["status"] == "running"
        and status.get("host") == socket.gethostname()
        and isinstance(status.get("pid"), int)
    ):
        if not pid_alive(status["pid"]):
            status = {
                **status,
                "status": "killed",
                "error": "the process ended without writing a final status (killed?)",
            }
    return status


def is_finished(run_dir: str | os.PathLike) -> bool:
    return read_status(run_dir).get("status") == "done" and os.path.isfile(
        os.path.join(os.fspath(run_dir), "metrics.json")
    )


def mark_failed(run_dir: str | os.PathLike, error: BaseException | str) -> None:
    """Record ``failed`` for a run of this process whose status.json already says ``done``
    or ``running`` (an exception after ``train`` returned: the objective, closing a logger):
    a run is ``done`` only when the whole job completed without an exception. Its
    metrics.json is renamed ``metrics.incomplete.json`` so the folder no longer looks
    finished. A status of another process is left alone."""
    from bertlab.utils.hydra_utils import find_user_error

    status = read_status(run_dir)
    if status.get("status") not in ("done", "running") or status.get("pid") != os.getpid():
        return
    if isinstance(error, BaseException):
        user = find_user_error(error)
        error = str(user) if user is not None else one_line(error)
    keep = {k: v for k, v in status.items() if k not in ("status", "finished", "error")}
    atomic_write_json(
        os.path.join(os.fspath(run_dir), STATUS_FILE),
        {"status": "failed", **keep, "finished": _now(), "error": error},
        default=str,
    )
    metrics = os.path.join(os.fspath(run_dir), "metrics.json")
    if os.path.exists(metrics):
        os.replace(metrics, os.path.join(os.fspath(run_dir), "metrics.incomplete.json"))


@contextmanager
def failed_on_error(run_dir: str | os.PathLike) -> Iterator[None]:
    """``with failed_on_error(run_dir): ...``: any exception inside records ``failed``
    (:func:`mark_failed`) and propagates."""
    try:
        yield
    except BaseException as err:
        mark_failed(run_dir, err)
        raise
