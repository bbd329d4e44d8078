"""Train (and test) a model: ``python -m bertlab.train experiment=cws_crf [key=value ...]``.

``train(cfg)`` is a plain function (tests call it with a composed config); ``main`` only
wraps it with ``@hydra.main`` and returns the metric named by ``optimized_metric`` so that
sweepers can optimise it.

Reliability (docs/reliability.md):

* the run folder gets ``status.json`` (``running`` -> ``done`` / ``failed`` with a one-line
  reason) and ``metrics.json`` is written atomically, last, and only by a finished run;
* checkpoints are written atomically (:class:`bertlab.utils.checkpoint_io.AtomicCheckpointIO`)
  and hold everything a resume needs (sampler position, random-number states:
  :class:`bertlab.callbacks.resume_state.ResumeState`): ``ckpt_path=last`` resumes this run
  folder (``hydra.run.dir=<run folder>``; a fresh start when it has no checkpoint yet, and
  nothing to do when it already finished), ``ckpt_path=<run folder>`` its newest complete
  checkpoint, ``ckpt_path=<file>`` that file;
* a NaN/inf training loss stops the run naming the global step, or skips that optimizer
  step (``nonfinite_loss: stop | skip``; :mod:`bertlab.callbacks.nonfinite_loss`);
* exit status: 0 success; 2 a user error (bad override, config value, data, checkpoint:
  one ``bertlab: error:`` line); 1 a crash (traceback). In a multirun a failing job never
  stops the others: it is recorded as failed (status.json, one line on stderr), returns
  NaN to the sweeper, and the command exits 1 after all jobs ran.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import suppress
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from bertlab.callbacks.contracts import NeedsRunConfig, ReportsRunMetrics
from bertlab.callbacks.interrupt import RunInterrupted
from bertlab.callbacks.run_config import CKPT_KEY as RUN_CONFIG_KEY
from bertlab.nn.encoders import resolve_vocab_file
from bertlab.runs import (
    LAST,
    check_resume_checkpoint,
    checkpoint_dir,
    find_last_checkpoint,
    read_checkpoint,
    resolve_resume_path,
)
from bertlab.tasks.base import BertlabTask
from bertlab.utils.atomic import atomic_write_json, atomic_write_text
from bertlab.utils.checkout import warn_if_other_checkout
from bertlab.utils.checkpoint_io import AtomicCheckpointIO
from bertlab.utils.config import to_plain
from bertlab.utils.distributed import check_ddp_launch
from bertlab.utils.errors import CheckpointError, ConfigError
from bertlab.utils.hydra_utils import (
    exit_on_user_error,
    find_user_error,
    instantiate_list,
    precheck_overrides,
    register_resolvers,
    repo_root,
    validate_config,
)
from bertlab.utils.job_log import no_folder_on_refusal, open_job_log
from bertlab.utils.run_lock import RunLock, precheck_run_dir
from bertlab.utils.run_status import RunStatus, failed_on_error, is_finished, one_line, read_status
from bertlab.utils.startup_checks import check_training_batches
from bertlab.utils.summary import print_summary
from bertlab.utils.sweeps import done_job_metrics, multirun_summary, precheck_launcher, record_job_overrides
from bertlab.utils.wandb_utils import wandb_run_finished

log = logging.getLogger(__name__)
register_resolvers()
CONFIG_DIR = os.path.join(repo_root(), "conf")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    return str(obj)


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit and/or test as the config says; returns (metrics, objects).

    The data is read and checked and the model built first (:func:`prepare`): a start refused
    there, or by the lock or the resume check, leaves no run folder when Hydra made it empty for
    this start, and writes nothing into an existing one (the job log included:
    :mod:`bertlab.utils.job_log`). Nothing in the run folder is written before its lock is held and a resume is known
    valid (the checkpoint complete, of this task, its run config equal to this one outside
    ``resume.may_change``); then ``status.json`` (running, then done or failed), the
    ``.hydra/`` files and, only when everything else is done, ``metrics.json`` (atomically)
    into ``cfg.paths.output_dir``."""
    start = time.time()
    out_dir = cfg.paths.output_dir
    with no_folder_on_refusal(out_dir):  # a refused start leaves no folder (Hydra made an empty one)
        validate_config(cfg)
        datamodule, model = prepare(cfg)  # the data read and checked: limits that depend on it refused here
        os.makedirs(out_dir, exist_ok=True)
        lock = RunLock(out_dir).acquire()  # one writer per run folder: a second live process stops here
        try:
            ckpt_path, saved_cfg = resume_point(cfg, out_dir)
        except BaseException:
            lock.release()  # a refused resume leaves the folder as it was (its status included)
            raise
    if str(cfg.get("ckpt_path")) == LAST and is_finished(out_dir) and not _trains_longer(cfg, saved_cfg):
        lock.release()
        log.info("%s already finished (status.json done): nothing to resume", out_dir)
        with open(os.path.join(out_dir, "metrics.json"), encoding="utf-8") as f:
            return json.load(f), {"cfg": cfg}
    status = RunStatus(out_dir, task_name=cfg.get("task_name"))
    status.running()
    open_job_log()  # the start-up's log records, held until now, go to <run folder>/<task_name>.log
    try:
        save_hydra_files(cfg, out_dir)
        record_job_overrides(cfg)  # a multirun job's overrides, for a relaunch with skip_done
        stale = os.path.join(out_dir, "metrics.json")
        if os.path.exists(stale):  # from an earlier attempt in this folder: not this run's result
            os.remove(stale)
        metrics, objects = _train(cfg, out_dir, ckpt_path, datamodule, model, start)
    except RunInterrupted as err:
        status.interrupted(str(err), step=err.step, checkpoint=err.checkpoint)
        lock.release()
        raise
    except BaseException as err:
        user = find_user_error(err)
        try:
            status.failed(str(user) if user is not None else one_line(err))
        except OSError:  # the status itself cannot be written (a full disk): the error line says why
            log.warning("could not record the failure in %s", status.path)
        lock.release()
        raise
    status.done(test_checkpoint=metrics.get("test_checkpoint"))
    lock.release()
    return metrics, objects


def resume_point(cfg: DictConfig, out_dir: str) -> tuple[str | None, dict[str, Any] | None]:
    """The checkpoint this run resumes (or tests) from and its stored run config (read once),
    ``(None, None)`` for a fresh run; raises a
    one-line error, before anything is written, for a resume that cannot be right:
    ``ckpt_path=last`` with no checkpoint, a checkpoint of another task, or one whose run
    config differs from this one outside ``resume.may_change`` (+ ``resume.also_may_change``)."""
    ckpt_path = resolve_resume_path(cfg.get("ckpt_path"), out_dir)
    if ckpt_path is None:
        if str(cfg.get("ckpt_path")) == LAST:
            raise CheckpointError(
                f"ckpt_path=last: no complete checkpoint in {checkpoint_dir(out_dir)} to resume "
                "(to start a new run, leave ckpt_path out)"
            )
        refuse_a_folder_holding_a_run(out_dir)
        return None, None
    ckpt = read_checkpoint(ckpt_path)
    check_resume_checkpoint(ckpt_path, cfg.model._target_, ckpt)
    saved = ckpt[RUN_CONFIG_KEY].get("config", {})
    del ckpt  # weights and optimizer states: Lightning loads them itself
    if cfg.get("train", True):
        resume_cfg = cfg.get("resume") or {}
        allowed = [*resume_cfg.get("may_change", []), *resume_cfg.get("also_may_change", [])]
        changed = config_changes(saved, to_plain(cfg), allowed)
        if changed:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed[:6])
            more = f" (and {len(changed) - 6} more)" if len(changed) > 6 else ""
            raise ConfigError(
                "ckpt_path",
                f"{ckpt_path} was trained with another config: {shown}{more}; a resume may change only "
                f"resume.may_change keys (add one with 'resume.also_may_change=[key]', or start a new run)",
            )
    log.info("%s from %s", "resuming" if cfg.get("train", True) else "testing", ckpt_path)
    return ckpt_path, saved


def refuse_a_folder_holding_a_run(out_dir: str) -> None:
    """A new run (no ``ckpt_path``) never trains over a folder that holds a run: a finished,
    interrupted or killed one, or any sound checkpoint (a failed run without checkpoints may be
    started again). A folder with Lightning's ``hpc_ckpt_*.ckpt`` is a requeued SLURM job, which
    Lightning resumes itself."""
    if any(f.startswith("hpc_ckpt_") and f.endswith(".ckpt") for f in os.listdir(out_dir)):
        return  # a SLURM requeue: Lightning resumes from its own hpc checkpoint (docs/cluster.md)
    status = read_status(out_dir).get("status")
    last = find_last_checkpoint(out_dir) if os.path.isdir(checkpoint_dir(out_dir)) else None
    if status in ("done", "interrupted", "killed") or last is not None:
        what = f"status {status}" + (f", checkpoint {os.path.basename(last)}" if last else "")
        raise ConfigError(
            "hydra.run.dir",
            f"{out_dir} holds a run ({what}): resume it with ckpt_path=last, or give a new folder "
            "(a new run never overwrites one)",
        )


#: the keys that make a resume of a finished run train on (more epochs, steps or time)
LONGER = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time")


def _trains_longer(cfg: DictConfig, saved: dict[str, Any] | None) -> bool:
    if saved is None or not cfg.get("train", True):
        return False
    return any(key in LONGER for key, _, _ in config_changes(saved, to_plain(cfg), []))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: obj}


def config_changes(saved: dict[str, Any], new: dict[str, Any], allowed: list[str]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, new value)`` for every leaf key whose value differs, except keys
    matching a pattern of ``allowed`` (fnmatch, e.g. ``paths.*``) or lying under one."""
    import fnmatch

    a, b = _flatten(saved), _flatten({k: v for k, v in new.items() if k != "hydra"})

    def free(key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, p) or key.startswith(p + ".") for p in allowed)

    missing = object()
    return [
        (k, a.get(k), b.get(k))
        for k in sorted(set(a) | set(b))
        if a.get(k, ADDED_KEYS.get(k, missing)) != b.get(k, missing) and not free(k)
    ]


#: keys added after runs were saved without them: the value that behaves as those runs did
ADDED_KEYS: dict[str, Any] = {"data.tokenizer": "char"}


def save_hydra_files(cfg: DictConfig, out_dir: str) -> None:
    """``.hydra/config.yaml`` (interpolations kept), ``hydra.yaml`` and ``overrides.yaml``, as
    Hydra writes them (conf/hydra/default.yaml turns Hydra's own early writing off:
    ``output_subdir: null``), written here once the run owns its folder."""
    from hydra.core.hydra_config import HydraConfig

    folder = os.path.join(out_dir, ".hydra")
    os.makedirs(folder, exist_ok=True)
    task = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"]) if "hydra" in cfg else cfg
    files = {"config.yaml": OmegaConf.to_yaml(task)}
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        files["hydra.yaml"] = OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}))
        files["overrides.yaml"] = OmegaConf.to_yaml(hydra_cfg.overrides.task)
    for name, text in files.items():
        atomic_write_text(os.path.join(folder, name), text)


#: callbacks no run may go without (what each guards): a config that drops one is refused
REQUIRED_CALLBACKS = {
    "bertlab.callbacks.resume_state.ResumeState": "exact resumes (data position, random states)",
    "bertlab.callbacks.loggers.ResumeHistory": "the logged history continued, not duplicated, on a resume",
    "bertlab.callbacks.run_config.RunConfigInCheckpoint": "the run config in every checkpoint (resume checks)",
    "bertlab.callbacks.nonfinite_loss.NonFiniteLossGuard": "a NaN/inf training loss stops or skips, never trains on",
}


def check_required_callbacks(cfg: DictConfig) -> None:
    """One line, before anything runs, when ``callbacks`` lacks one of :data:`REQUIRED_CALLBACKS`
    (e.g. ``callbacks.resume_state=null``): a run without it could end with a wrong result."""
    declared = []
    for entry in (cfg.get("callbacks") or {}).values():
        target = entry.get("_target_") if isinstance(entry, DictConfig) else None
        if target:
            with suppress(Exception):  # a target that cannot be imported fails at instantiation, with its own line
                declared.append(hydra.utils.get_class(str(target)))
    for path, why in REQUIRED_CALLBACKS.items():
        needed = hydra.utils.get_class(path)
        if not any(issubclass(cls, needed) for cls in declared):
            raise ConfigError(
                "callbacks",
                f"{path} is missing from the callbacks ({why}); every run needs it: keep it in the callbacks config",
            )


def prepare(cfg: DictConfig) -> tuple[Any, BertlabTask]:
    """Seed, threads, the DataModule (its data read and checked) and the model: everything a run
    needs before it owns its folder, so that a limit that depends on the data (a character
    budget that selects nothing, a validation interval longer than an epoch, no usable training
    example) is refused before a run folder exists. Writes nothing."""
    if cfg.get("train", True):
        check_required_callbacks(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    datamodule = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    datamodule.setup("fit")  # reads the data: the model is built from what it found (model_kwargs)
    model = hydra.utils.instantiate(cfg.model, **datamodule.model_kwargs(), _recursive_=False)
    if cfg.get("train", True):  # a run that would train nothing stops here, before the Trainer (one line)
        check_training_batches(cfg, datamodule.train_dataloader(), getattr(datamodule, "stats", None))
    return datamodule, model


def _train(
    cfg: DictConfig, out_dir: str, ckpt_path: str | None, datamodule: Any, model: BertlabTask, start: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    if datamodule.tokenizer is not None:
        datamodule.tokenizer.save_vocab(os.path.join(out_dir, "vocab.txt"))
    callbacks = instantiate_list(cfg.get("callbacks"), "callback")  # every one declared in conf/callbacks/
    for cb in callbacks:
        if isinstance(cb, NeedsRunConfig):  # the run config in every checkpoint (RunConfigInCheckpoint)
            cb.set_run_config(cfg)
    loggers = instantiate_list(cfg.get("logger"), "logger")
    extra = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **extra)
    for lg in loggers:
        lg.log_hyperparams(to_plain(cfg))

    metrics: dict[str, Any] = {}
    if cfg.get("train", True):
        # weights_only: checkpoints hold tensors and plain containers only (never unpickle code)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if "val" in model.last_metrics:
            metrics["val_last"] = model.last_metrics["val"]
    test_ckpt = None
    if cfg.get("test", True):
        ckpt_cb = trainer.checkpoint_callback
        best = ckpt_cb.best_model_path if isinstance(ckpt_cb, ModelCheckpoint) else ""  # Lightning's only one
        if cfg.get("train", True):
            test_ckpt = best if best and os.path.isfile(best) else None
        else:
            test_ckpt = ckpt_path
        if cfg.get("train", True) and test_ckpt is None:
            log.warning("no best checkpoint: testing the current weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True)
        metrics["test"] = model.last_metrics.get("test", {})
        outputs = model.last_outputs.get("test")
        # under DDP every process holds the same whole-set outputs: process 0 writes them
        if outputs is not None and trainer.is_global_zero:
            metrics["prediction_files"] = datamodule.save_outputs("test", outputs, os.path.join(out_dir, "predictions"))

    for cb in callbacks:  # TokenThroughput (tokens/s, clocks), NonFiniteLossGuard (skipped steps) ...
        if isinstance(cb, ReportsRunMetrics):
            metrics.update(cb.run_metrics())
    metrics["test_checkpoint"] = test_ckpt
    if ckpt_path is not None and cfg.get("train", True):
        metrics["resumed_from"] = ckpt_path
    metrics["data_stats"] = datamodule.stats
    metrics["wall_seconds"] = time.time() - start
    if not trainer.is_global_zero:
        return metrics, {"cfg": cfg, "model": model, "datamodule": datamodule, "trainer": trainer}
    print_summary(metrics, title=f"{cfg.get('task_name', 'train')}: {out_dir}")
    # the very last thing a run does: a complete metrics.json marks a finished run
    atomic_write_json(os.path.join(out_dir, "metrics.json"), json.loads(json.dumps(metrics, default=_json_default)))
    return metrics, {"cfg": cfg, "model": model, "datamodule": datamodule, "trainer": trainer}


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    if not name:
        return None
    if name not in metrics:
        raise KeyError(
            f"optimized_metric {name!r} not among the logged metrics: {sorted(k for k in metrics if '/' in k)}"
        )
    return float(metrics[name])


#: failures of the jobs of a multirun run in this process (reported by ``cli`` at the end)
FAILED_JOBS: list[str] = []


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no hydra context (train called directly)
        return False


def run_job(cfg: DictConfig) -> float | None:
    """One job: train, then the objective. In a multirun a failure is recorded (status.json,
    one line on stderr, FAILED_JOBS) and NaN returned, so the sweep goes on."""
    if not _is_multirun():
        with failed_on_error(cfg.paths.output_dir):  # "done" only when the whole job completed
            metrics, _ = train(cfg)
            return metric_value(metrics, cfg.get("optimized_metric"))
    try:
        with failed_on_error(cfg.paths.output_dir):
            stored = done_job_metrics(cfg)  # skip_done=true: a finished job of these overrides is not trained again
            metrics, _ = (stored, None) if stored is not None else train(cfg)
            return metric_value(metrics, cfg.get("optimized_metric"))
    except Exception as err:  # noqa: BLE001  a job's failure must not stop the sweep
        user = find_user_error(err)
        if user is None:
            log.exception("job failed")  # the traceback goes to the job's log file
        reason = str(user) if user is not None else one_line(err)
        record_refused_job(cfg, reason)
        msg = f"{cfg.paths.output_dir}: {reason}"
        print(f"bertlab: error: job failed: {msg}", file=sys.stderr, flush=True)
        FAILED_JOBS.append(msg)
        return float("nan")


def record_refused_job(cfg: DictConfig, reason: str) -> None:
    """A job of a multirun refused before it took its folder (which is then removed) is recorded
    as failed in a new folder of its own (its ``.hydra/`` files, overrides and ``status.json``),
    so that the sweep's report lists it with its reason; a folder that holds anything (an
    earlier run's) is never written."""
    out_dir = cfg.paths.output_dir
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        return
    try:
        os.makedirs(out_dir, exist_ok=True)
        save_hydra_files(cfg, out_dir)
        record_job_overrides(cfg)
        RunStatus(out_dir, task_name=cfg.get("task_name")).failed(reason)
    except OSError as err:  # the record is a courtesy: the sweep goes on (its stderr line says why)
        log.warning("could not record the refused job in %s: %s", out_dir, err)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg))
    check_ddp_launch(cfg)
    with failed_on_error(cfg.paths.output_dir), wandb_run_finished():  # W&B closed also when the job fails
        return run_job(cfg)


def precheck_resume(argv: list[str]) -> None:
    """Before Hydra makes a run folder: ``ckpt_path=last`` resumes the folder named by
    ``hydra.run.dir``; without one (a new folder, nothing in it) or when that folder holds no
    complete checkpoint, one line and exit status 2. Multiruns are left to each job."""
    if any(a in ("-m", "--multirun") for a in argv) or "ckpt_path=last" not in argv:
        return
    run_dir = next((a.split("=", 1)[1].strip("'\"") for a in argv if a.startswith("hydra.run.dir=")), None)
    if run_dir is None:
        msg = "ckpt_path=last resumes the run folder given by hydra.run.dir=<folder>; none was given"
    elif resolve_resume_path(LAST, run_dir) is None:
        msg = f"ckpt_path=last: no complete checkpoint in {checkpoint_dir(run_dir)} to resume (to start a new run, leave ckpt_path out)"
    else:
        return
    print(f"bertlab: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def cli() -> None:
    """Entry point: one-line errors for bad overrides, then hydra; exit status 1 when a job
    of a multirun failed (after all jobs ran)."""
    warn_if_other_checkout()
    precheck_overrides(CONFIG_DIR, "train", sys.argv[1:])
    precheck_launcher(CONFIG_DIR, sys.argv[1:])  # hydra/launcher=slurm* without sbatch: one line, exit 2
    precheck_run_dir(sys.argv[1:])  # a resume of a folder another live process writes: stop before Hydra writes
    precheck_resume(sys.argv[1:])
    try:
        main()
    except RunInterrupted as err:
        run = os.path.dirname(os.path.dirname(err.checkpoint or ""))
        print(
            f"bertlab: {err}; resume with the same overrides and ckpt_path=last hydra.run.dir={run}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(err.exit_code)
    summary = multirun_summary()  # None unless a multirun ran: "N done / M failed ...; report: ..."
    if summary is not None:
        line, _, failed = summary
        print(line, file=sys.stderr if failed or FAILED_JOBS else sys.stdout, flush=True)
    if FAILED_JOBS or (summary is not None and summary[2]):
        sys.exit(1)


if __name__ == "__main__":
    cli()
