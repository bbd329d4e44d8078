"""One writer per run folder: an exclusive lock file taken by a run (and by its resume).

``train(cfg)`` takes ``<run folder>/run.lock`` before it writes anything there and removes it
at the end (success or failure). The file is created atomically (``O_CREAT | O_EXCL``: of two
processes, exactly one creates it) and holds the owner: host, pid, start time and, under
SLURM, the job id. Another process that finds the lock:

* stops at once when the owner is alive (or on another host, where its life cannot be
  checked) with a :class:`RunLockError` naming the owner (one line, exit status 2);
* takes it over with a warning when the owner is dead: same host and its pid is gone (a
  run killed by SIGKILL or out of memory leaves its lock behind), or the same
  ``SLURM_JOB_ID`` (a requeued job is the same run, restarted, maybe on another node);
* re-enters it when the owner is this very process (a second ``train`` call in the same
  process, e.g. a run followed by its resume in a test or a notebook).

Under DDP only global rank 0 takes the lock (other ranks are the same run); each job of a
multirun has its own folder and so its own lock. A take-over renames the stale file to a
unique name first (only one of several processes taking over succeeds) and checks that it
renamed the stale owner's file, not a fresh one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import time
from typing import Any

from bertlab.utils.errors import BertlabError
from bertlab.utils.processes import pid_alive

__all__ = ["LOCK_FILE", "RunLock", "RunLockError", "read_lock", "is_rank_zero", "precheck_run_dir"]

log = logging.getLogger(__name__)
LOCK_FILE = "run.lock"


class RunLockError(BertlabError):
    """Another live process owns the run folder."""


def is_rank_zero() -> bool:
    """Global rank 0 (or no distributed launch): the env variables torchrun, Lightning's DDP
    launcher and SLURM set (``RANK``, ``SLURM_PROCID``, ``LOCAL_RANK`` with ``NODE_RANK``)."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key) not in (None, ""):
            return int(os.environ[key]) == 0
    local, node = os.environ.get("LOCAL_RANK"), os.environ.get("NODE_RANK")
    return int(local or 0) == 0 and int(node or 0) == 0


def read_lock(path: str) -> dict[str, Any] | None:
    """The owner recorded in a lock file; None when it is missing; ``{}`` when unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    job = f", SLURM job {owner['slurm_job_id']}" if owner.get("slurm_job_id") else ""
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}{job}, since {owner.get('started', '?')}"


class RunLock:
    """The lock of one run folder. ``acquire()`` / ``release()``, or ``with RunLock(dir):``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_FILE)
        self.held = False
        self.info: dict[str, Any] = {}

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _owner_is_gone(self, owner: dict[str, Any]) -> str | None:
        """Why the lock's owner no longer runs (or None when it may still run)."""
        me = self._me()
        if owner.get("host") == me["host"] and owner.get("pid") == me["pid"]:
            return "this process"
        job = os.environ.get("SLURM_JOB_ID")
        if job and str(owner.get("slurm_job_id")) == job:
            return f"SLURM job {job} requeued"
        if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not pid_alive(owner["pid"]):
            return "its process is gone"
        return None

    @staticmethod
    def _me() -> dict[str, Any]:
        info: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        if os.environ.get("SLURM_JOB_ID"):
            info["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        return info

    def check_free(self) -> None:
        """Raise RunLockError when a live process owns the folder (takes nothing)."""
        if not is_rank_zero():
            return
        owner = read_lock(self.path)
        if owner and self._owner_is_gone(owner) is None:
            raise RunLockError(
                f"run folder {self.run_dir} is in use by another process ({_describe(owner)}; lock file "
                f"{self.path}): wait for it to end, or use another hydra.run.dir"
            )

    def acquire(self) -> RunLock:
        """Take the lock (no-op on ranks other than 0). Raises RunLockError when a live
        process owns the folder."""
        if self.held or not is_rank_zero():
            return self
        os.makedirs(self.run_dir, exist_ok=True)
        self.info = self._me()
        for _attempt in range(20):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(self.info, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                self.held = True
                return self
            owner = read_lock(self.path)
            if owner is None:
                continue  # released in between: try again
            if not owner:  # being written by its creator right now (or garbage): wait a little
                time.sleep(0.05)
                owner = read_lock(self.path)
                if owner is None:
                    continue
                if not owner and time.time() - _mtime(self.path) < 5:
                    continue
            why = self._owner_is_gone(owner) if owner else "unreadable lock file"
            if why is None:
                raise RunLockError(
                    f"run folder {self.run_dir} is in use by another process ({_describe(owner)}; lock file "
                    f"{self.path}): wait for it to end, or use another hydra.run.dir"
                )
            self._take_over(owner, why)
        raise RunLockError(f"run folder {self.run_dir}: could not take the lock {self.path} (contended)")

    def _take_over(self, owner: dict[str, Any], why: str) -> None:
        stale = f"{self.path}.stale-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.rename(self.path, stale)
        except FileNotFoundError:
            return  # someone else took it over (or it was released): retry
        if read_lock(stale) != owner:  # we renamed a fresh lock someone just created: give it back
            try:
                os.link(stale, self.path)
            except FileExistsError:
                pass
            os.remove(stale)
            return
        os.remove(stale)
        if why != "this process":
            log.warning("run folder %s: taking over the lock of %s (%s)", self.run_dir, _describe(owner), why)

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if not self.held:
            return
        self.held = False
        owner = read_lock(self.path)
        if owner and owner.get("pid") == self.info.get("pid") and owner.get("host") == self.info.get("host"):
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def precheck_run_dir(argv: list[str]) -> None:
    """Before Hydra starts (and writes its ``.hydra/`` files and log into the run folder): a
    ``hydra.run.dir=<folder>`` given on the command line (a resume) that a live process owns
    stops with one line, exit status 2. Multiruns are left to each job's lock."""
    import sys

    if any(a in ("-m", "--multirun") for a in argv):
        return
    for arg in argv:
        if arg.startswith("hydra.run.dir="):
            try:
                RunLock(arg.split("=", 1)[1].strip("'\"")).check_free()
            except RunLockError as err:
                print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
                sys.exit(2)
