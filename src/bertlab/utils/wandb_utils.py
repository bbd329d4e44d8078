"""Weights & Biases glue: a WandbLogger factory for ``conf/logger/wandb.yaml`` and the
end-of-job finish that the train entry point calls in ``finally:``.

* Mode: the ``mode`` argument, else ``$WANDB_MODE``, else ``offline`` (nothing leaves the
  machine unless the user asks for it; ``wandb sync <run dir>`` uploads later).
* A Hydra multirun puts its jobs in one W&B group named after the sweep folder, one run
  per job (named ``<group>-<job num>``); a single run has no group unless one is given.
* The best checkpoint is logged as a model artifact only when online (WandbLogger's
  ``log_model``; it refuses offline runs).
* A run folder is one W&B run: its id is kept in ``<save_dir>/wandb_run_id`` (written when
  the run starts) and a resume of the folder (``ckpt_path=last``, a SLURM requeue: the same
  job in the same folder) continues that run (``resume="allow"``) instead of starting a new
  one. Offline, each process writes its own ``wandb/offline-run-*`` folder with the same
  id; ``wandb sync`` puts them into the one run.
* WandbLogger silently re-uses a live ``wandb.run``: with Hydra's basic launcher every job
  of a multirun runs in the same process, so a job that did not finish its run would
  merge into the next one. :func:`finish_wandb` (called in ``finally:``) closes it with
  the job's exit code; the factory also closes a stale run before creating a new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import string
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Literal

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
#: the file in the run folder that holds the folder's W&B run id
RUN_ID_FILE = "wandb_run_id"


def resolve_mode(mode: str | None = None) -> str:
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode == "dryrun":  # wandb's old spelling of offline
        mode = "offline"
    if mode not in MODES:
        from bertlab.utils.errors import ConfigError

        raise ConfigError("logger.wandb.mode", f"must be one of {MODES} (or set WANDB_MODE), got {mode!r}")
    return mode


def _hydra_job() -> tuple[bool, str | None, int | None]:
    """(inside a multirun?, sweep folder name, job number) from Hydra's runtime config."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover
        return False, None, None
    if not HydraConfig.initialized():
        return False, None, None
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    sweep = os.path.basename(os.path.normpath(str(hc.sweep.dir))) if multirun else None
    num = getattr(hc.job, "num", None) if multirun else None  # a DictConfig at run time
    return multirun, sweep, num


def sweep_group(task_name: str | None = None) -> str | None:
    """The W&B group of this job: ``<task_name>-<sweep folder>`` inside a multirun, else None."""
    multirun, sweep, _ = _hydra_job()
    if not multirun:
        return None
    return f"{task_name}-{sweep}" if task_name else sweep


def folder_run_id(save_dir: str) -> str:
    """The W&B run id of the run folder ``save_dir``: the one in ``<save_dir>/wandb_run_id``
    (a resumed or requeued run), else a new one, written there (atomically, by global rank 0
    only) so that a resume finds it."""
    path = os.path.join(save_dir, RUN_ID_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            run_id = fh.read().strip()
        if _valid_run_id(run_id):
            return run_id
        log.warning("%s: not a W&B run id (%r): starting a new W&B run", path, run_id[:80])
    from bertlab.utils.atomic import atomic_write_text
    from bertlab.utils.run_lock import is_rank_zero

    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's form
    if is_rank_zero():
        atomic_write_text(path, run_id + "\n")
    return run_id


def _valid_run_id(run_id: str) -> bool:
    # what W&B accepts in a run id (no slashes, no spaces; at most 128 characters)
    return 0 < len(run_id) <= 128 and all(c.isalnum() or c in "-_." for c in run_id)


def make_wandb_logger(
    project: str = "bertlab",
    save_dir: str = ".",
    name: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: Sequence[str] | None = None,
    mode: str | None = None,
    log_model: bool | Literal["all"] = True,
    task_name: str | None = None,
    entity: str | None = None,
    id: str | None = None,  # noqa: A002  (WandbLogger's name)
    **kwargs: Any,
):
    """Build a ``pytorch_lightning.loggers.WandbLogger`` (see the module docstring)."""
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    mode = resolve_mode(mode)
    if wandb.run is not None:
        log.warning("a W&B run (%s) was still open: finishing it before this job's run", wandb.run.id)
        wandb.finish()
    multirun, sweep, num = _hydra_job()
    if group is None and multirun:
        group = sweep_group(task_name)
    if name is None:
        name = f"{group}-{num}" if multirun else os.path.basename(os.path.normpath(save_dir))
    os.makedirs(save_dir, exist_ok=True)
    online = mode == "online"
    if id is None and mode != "disabled":
        id = folder_run_id(save_dir)  # noqa: A001
    return WandbLogger(
        name=name,
        save_dir=save_dir,
        project=project,
        entity=entity,
        group=group,
        job_type=job_type,
        tags=list(tags) if tags else None,
        mode=mode,
        offline=not online,
        log_model=log_model if online else False,
        id=id,
        **{"resume": "allow", **kwargs},
    )


def finish_wandb(exit_code: int | None = None) -> bool:
    """Finish the live W&B run, if any (no-op when wandb was never imported). Returns
    whether a run was finished. ``exit_code`` != 0 marks the run failed."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return False
    try:
        wandb.finish(exit_code=exit_code)
    except Exception as err:  # never hide the job's own error behind a logging one
        log.warning("wandb.finish failed: %s", err)
    return True


@contextlib.contextmanager
def wandb_run_finished() -> Iterator[None]:
    """``with wandb_run_finished(): train(cfg)``: the W&B run is finished when the block
    ends, with exit code 0, or 1 when it raised (the exception propagates)."""
    try:
        yield
    except BaseException as err:
        if isinstance(err, SystemExit) and err.code in (0, None):
            finish_wandb(exit_code=0)
        else:
            code = err.code if isinstance(err, SystemExit) and isinstance(err.code, int) else 1
            finish_wandb(exit_code=code)
        raise
    else:
        finish_wandb(exit_code=0)


# ---------------------------------------------------------------------------------------
# Reading an offline run back (tests, and a quick look without uploading). wandb >= 0.2x
# dropped its Python reader of the ``run-*.wandb`` files (the Go core writes them); the
# format is LevelDB's log framing (32 KiB blocks, 7-byte chunk headers) after a 7-byte
# ``:W&B`` file header, each record one ``wandb.proto.wandb_internal_pb2.Record``.

_BLOCK = 32768
_HEADER = 7


def iter_offline_records(path: str) -> Iterator[Any]:
    """The protobuf ``Record`` objects of one ``run-*.wandb`` file, in order."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a .wandb file")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:  # FULL
            payload = chunk
        elif kind == 2:  # FIRST
            pending = chunk
            continue
        elif kind == 3:  # MIDDLE
            pending += chunk
            continue
        else:  # LAST
            payload, pending = pending + chunk, b""
        rec = pb.Record()  # type: ignore[attr-defined]  # wandb's protobuf module is generated at import, untyped
        rec.ParseFromString(payload)
        yield rec


def read_offline_run(run_dir: str) -> dict[str, Any]:
    """Summarise an offline run folder (``.../wandb/offline-run-*``): run id, name, group,
    job type, tags, config (dict), history (list of flat dicts, nested keys joined by
    ``/``), summary, exit code and the media files written."""
    import glob
    import json

    files = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one run-*.wandb file, found {len(files)}")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "exit_code": None}

    def key_of(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    for rec in iter_offline_records(files[0]):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(
                id=r.run_id,
                name=r.display_name,
                group=r.run_group,
                job_type=r.job_type,
                project=r.project,
                tags=list(r.tags),
            )
            for item in r.config.update:
                out["config"][key_of(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][key_of(item)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({key_of(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][key_of(item)] = json.loads(item.value_json)
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    media = os.path.join(run_dir, "files", "media")
    out["media"] = sorted(
        os.path.relpath(p, media)
        for p in glob.glob(os.path.join(media, "**", "*"), recursive=True)
        if os.path.isfile(p)
    )
    return out
