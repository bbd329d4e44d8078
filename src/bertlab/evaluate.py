"""Test a checkpoint: ``python -m bertlab.evaluate ckpt_path=<file.ckpt> [+data.key=value ...]``.

The checkpoint carries its run config, so nothing else is needed; ``data.*`` overrides
(e.g. another test file) are merged onto the saved data config. Writes metrics.json and
the predictions into this evaluation's run folder and prints the summary table.
"""

from __future__ import annotations

import logging
import os
import time

import hydra
from omegaconf import DictConfig

from bertlab.runs import load_run
from bertlab.utils.atomic import atomic_write_json
from bertlab.utils.checkout import warn_if_other_checkout
from bertlab.utils.cli_checks import check_output_dir
from bertlab.utils.config import to_plain
from bertlab.utils.hydra_utils import (
    exit_on_user_error,
    instantiate_list,
    precheck_overrides,
    repo_root,
    set_threads,
)
from bertlab.utils.job_log import no_folder_on_refusal, open_job_log
from bertlab.utils.summary import print_summary

log = logging.getLogger(__name__)
CONFIG_DIR = os.path.join(repo_root(), "conf")


def evaluate(cfg: DictConfig) -> dict:
    start = time.time()
    out_dir = cfg.paths.output_dir
    data_files = [v for v in (to_plain(cfg.get("data")) or {}).values() if isinstance(v, str)]
    with no_folder_on_refusal(out_dir):  # a refused start leaves no folder (Hydra made an empty one)
        check_output_dir(out_dir, [cfg.ckpt_path, *data_files], writes=["metrics.json", "predictions/"])
        os.makedirs(out_dir, exist_ok=True)
        set_threads(cfg)
        model, datamodule, saved = load_run(cfg.ckpt_path, to_plain(cfg.get("data")) or None)
    open_job_log()  # the checkpoint verified and the data read: the job log may be written now
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=instantiate_list(cfg.get("logger"), "logger") or False,
        callbacks=instantiate_list(cfg.get("callbacks"), "callback"),
    )
    trainer.test(model, datamodule=datamodule)
    metrics = {
        "test": model.last_metrics.get("test", {}),
        "ckpt_path": cfg.ckpt_path,
        "trained_as": saved.get("task_name"),
        "wall_seconds": time.time() - start,
        "data_stats": datamodule.stats,
    }
    outputs = model.last_outputs.get("test")
    if not trainer.is_global_zero:  # under DDP every process holds the same whole-set results
        return metrics
    if outputs is not None:
        metrics["prediction_files"] = datamodule.save_outputs("test", outputs, os.path.join(out_dir, "predictions"))
    atomic_write_json(os.path.join(out_dir, "metrics.json"), metrics, default=str)
    print_summary(metrics, title=f"evaluate {cfg.ckpt_path}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


def refuse_a_training_run_folder(argv: list[str]) -> None:
    """evaluate writes its own folder (or the one given), never a training run's: a
    ``hydra.run.dir`` that holds a run of another task (status.json, checkpoints/) stops
    with one line, exit status 2, before Hydra writes into it."""
    import sys

    from bertlab.utils.run_status import read_status

    run_dir = next((a.split("=", 1)[1].strip("'\"") for a in argv if a.startswith("hydra.run.dir=")), None)
    if run_dir is None or not os.path.isdir(run_dir):
        return
    task = read_status(run_dir).get("task_name")
    if os.path.isdir(os.path.join(run_dir, "checkpoints")) or (task is not None and task != "eval"):
        print(
            f"bertlab: error: config key 'hydra.run.dir': {run_dir} holds a training run ({task or 'checkpoints/'}); "
            "evaluate writes metrics.json, predictions/ and logs into its own folder: give a new hydra.run.dir",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)


def cli() -> None:
    import sys

    warn_if_other_checkout()
    precheck_overrides(CONFIG_DIR, "eval", sys.argv[1:])
    refuse_a_training_run_folder(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
