"""Sweeps (Hydra multiruns) that can be resumed, relaunched and read.

* :func:`done_job_metrics`: ``skip_done=true`` on a multirun relaunched on the same sweep dir
  (``hydra.sweep.dir=<dir>``): a job whose folder is finished (``status.json`` done and
  ``metrics.json``) *with the same overrides* returns its stored metrics without training. Every
  multirun job records its overrides in ``<job>/job_overrides.json`` (Hydra rewrites
  ``.hydra/overrides.yaml`` before the job starts, so that file cannot tell); a finished folder
  of other overrides (an Optuna trial of another parameter set in the same folder number) is
  refused, never overwritten or reported as this job.
* :func:`multirun_summary`: the one line every multirun ends with (``N done / M failed``, the
  report command).
* :func:`precheck_launcher`: ``hydra/launcher=slurm*`` on a machine without SLURM's ``sbatch``:
  one error line, exit status 2 (instead of submitit's traceback "Could not detect srun").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from bertlab.utils.atomic import atomic_write_json
from bertlab.utils.errors import ConfigError
from bertlab.utils.run_status import is_finished

log = logging.getLogger(__name__)

__all__ = [
    "JOB_OVERRIDES_FILE",
    "RecordSweepDir",
    "done_job_metrics",
    "job_dirs",
    "multirun_summary",
    "precheck_launcher",
]

#: what a multirun job records in its folder: the overrides it was started with
JOB_OVERRIDES_FILE = "job_overrides.json"
#: overrides that do not change what a job computes (a relaunch may add them)
NEUTRAL_KEYS = ("skip_done", "ckpt_path")


# --------------------------------------------------------------------------------- skip_done
def _key(override: str) -> str:
    return str(override).split("=", 1)[0].lstrip("+~")


def _comparable(overrides: Sequence[str]) -> list[str]:
    return sorted(str(o) for o in overrides if _key(o) not in NEUTRAL_KEYS)


def _hydra_task_overrides() -> list[str] | None:
    """The current Hydra job's overrides; None outside a multirun job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hc = HydraConfig.get()
    except ValueError:
        return None
    if hc.mode != RunMode.MULTIRUN:
        return None
    return [str(o) for o in hc.overrides.task]


def done_job_metrics(cfg: Any, overrides: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Called first by every job of a multirun (``train.run_job``); ``overrides``: the job's
    (default: the running Hydra job's; outside a multirun nothing happens: None).

    With ``skip_done`` true and a finished job folder (``cfg.paths.output_dir``) that recorded
    the same overrides: returns its ``metrics.json`` (the job then trains nothing). Otherwise
    returns None (train as usual; ``train`` records the overrides once it owns the folder:
    :func:`record_job_overrides`). Writes nothing.

    Raises:
        ConfigError ``skip_done``: the folder is finished but recorded other overrides, or none
        (it predates the record): it is neither this job's result nor overwritten.
    """
    if overrides is None:
        overrides = _hydra_task_overrides()
        if overrides is None:
            return None
    out = Path(str(cfg.paths.output_dir))
    record = out / JOB_OVERRIDES_FILE
    if cfg.get("skip_done", False) and is_finished(out):
        stored = None
        if record.is_file():
            try:
                stored = json.loads(record.read_text(encoding="utf-8")).get("overrides")
            except (OSError, ValueError, AttributeError):
                stored = None
        if stored is None:
            raise ConfigError(
                "skip_done",
                f"{out} is finished but holds no readable {JOB_OVERRIDES_FILE} (a run from before the record): "
                "cannot tell it ran these overrides; relaunch into a new hydra.sweep.dir",
            )
        if _comparable(stored) != _comparable(overrides):
            raise ConfigError(
                "skip_done",
                f"{out} is finished with other overrides ({' '.join(_comparable(stored))}) than this job "
                f"({' '.join(_comparable(overrides))}): not skipped and not overwritten; use a new hydra.sweep.dir",
            )
        with open(out / "metrics.json", encoding="utf-8") as fh:
            metrics = json.load(fh)
        log.info("skip_done: %s is done (status.json): its stored metrics, no training", out)
        print(f"bertlab: skip_done: {out} is done: not trained again", file=sys.stderr, flush=True)
        return metrics
    return None


def record_job_overrides(cfg: Any, overrides: Sequence[str] | None = None) -> None:
    """``<job>/job_overrides.json``: the overrides of this multirun job (default: the running
    Hydra job's; outside a multirun nothing is written), for a relaunch with ``skip_done``.
    Called by ``train`` once the run holds its folder's lock and its resume is valid (never by
    a start that is refused: it must not write into a folder it does not own)."""
    if overrides is None:
        overrides = _hydra_task_overrides()
        if overrides is None:
            return
    atomic_write_json(Path(str(cfg.paths.output_dir)) / JOB_OVERRIDES_FILE, {"overrides": [str(o) for o in overrides]})


# --------------------------------------------------------------------------------- the last line
def job_dirs(sweep_dir: str | os.PathLike) -> list[Path]:
    """The job folders of a multirun folder, in job-number order: Hydra's numbered job folders
    (``<n>``) and any folder with a ``.hydra/`` or a ``status.json`` (``.hydra/`` is written by
    bertlab.train only once a job holds its folder: a job refused before that still counts)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and (p.name.isdigit() or (p / ".hydra").is_dir() or (p / "status.json").is_file())
    ]
    return sorted(found, key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))


def multirun_summary(sweep_dir: str | os.PathLike | None = None) -> tuple[str, int, int] | None:
    """``(line, done, failed)`` for the multirun folder ``sweep_dir`` (default: the multirun
    this process just ran, recorded by :class:`RecordSweepDir`; None when it ran none). A job is done
    when its folder is finished (status.json done and metrics.json), else failed (failed,
    killed, or no status at all). The line names the report command."""
    if sweep_dir is None:
        sweep_dir = _last_sweep_dir()
        if sweep_dir is None:
            return None
    jobs = job_dirs(sweep_dir)
    done = sum(is_finished(j) for j in jobs)
    failed = len(jobs) - done
    report = f"python -m bertlab.report {sweep_dir}"
    if failed:
        line = (
            f"bertlab: error: {failed} job(s) of the multirun failed: {done} done / {failed} failed "
            f"in {sweep_dir} (see their status.json); report: {report}"
        )
    else:
        line = f"bertlab: multirun: {done} done / 0 failed in {sweep_dir}; report: {report}"
    return line, done, failed


#: the sweep dir of the multirun this process ran (set by :class:`RecordSweepDir`)
_LAST_SWEEP: dict[str, str] = {}


def _last_sweep_dir() -> str | None:
    return _LAST_SWEEP.get("dir")


class RecordSweepDir(Callback):
    """A Hydra callback (``hydra.callbacks.record_sweep_dir`` in ``conf/hydra/default.yaml``):
    remembers the sweep dir of a multirun as it starts, in the process that launches the jobs
    (whatever the launcher), for :func:`multirun_summary`."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _LAST_SWEEP["dir"] = str(config.hydra.sweep.dir)


# --------------------------------------------------------------------------------- SLURM precheck
def _launcher_choice(argv: Sequence[str]) -> str | None:
    from bertlab.utils.hydra_utils import hydra_overrides

    choice = None
    for ov in hydra_overrides(list(argv)):
        key, sep, value = ov.partition("=")
        if sep and key.lstrip("+~") == "hydra/launcher":
            choice = value
    return choice


def _is_slurm_launcher(config_dir: str | os.PathLike, name: str, depth: int = 0) -> bool:
    """``conf/hydra/launcher/<name>.yaml`` is built on ``submitit_slurm`` (through its defaults)."""
    if name.startswith("submitit_slurm"):
        return True
    path = Path(config_dir) / "hydra" / "launcher" / f"{name}.yaml"
    if depth > 10 or not path.is_file():
        return False
    import yaml

    try:
        defaults = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("defaults") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return False
    return any(isinstance(d, str) and _is_slurm_launcher(config_dir, d, depth + 1) for d in defaults)


def precheck_launcher(config_dir: str | os.PathLike, argv: Sequence[str], which=shutil.which) -> None:
    """A multirun with a SLURM launcher (``hydra/launcher=slurm``, ``slurm_gpu``, ... : any
    launcher config built on ``submitit_slurm``) on a machine without ``sbatch`` on PATH stops
    here with one ``bertlab: error:`` line and exit status 2, before Hydra starts."""
    if not any(a in ("-m", "--multirun") for a in argv):
        return
    name = _launcher_choice(argv)
    if name is None or not _is_slurm_launcher(config_dir, name):
        return
    if which("sbatch") is None:
        err = ConfigError(
            "hydra/launcher",
            f"{name} submits the jobs to SLURM, but there is no SLURM here (sbatch is not on PATH): "
            "run on a SLURM login node, or leave hydra/launcher out to run the jobs on this machine",
        )
        print(f"bertlab: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
