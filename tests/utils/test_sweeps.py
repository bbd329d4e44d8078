"""Sweeps you can relaunch and read: skip_done (bertlab.utils.sweeps.done_job_metrics), the line
every multirun ends with (multirun_summary, through a real Hydra multirun of a tiny task), the
SLURM launcher precheck, and the warning about a bertlab imported from another checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bertlab.utils.checkout import enclosing_checkout, other_checkout_warning
from bertlab.utils.errors import ConfigError
from bertlab.utils.run_status import RunStatus
from bertlab.utils.sweeps import (
    JOB_OVERRIDES_FILE,
    done_job_metrics,
    multirun_summary,
    precheck_launcher,
    record_job_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
JOB = ["optimizer.lr=0.001", "seed=1", "experiment=cws_crf"]


def _cfg(out: Path, skip_done: bool):
    return OmegaConf.create({"paths": {"output_dir": str(out)}, "skip_done": skip_done})


def _finish(out: Path, metrics: dict) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    RunStatus(out).done()


def test_skip_done_returns_the_stored_metrics_of_the_same_job_only(tmp_path, capsys):
    out = tmp_path / "0"
    # first launch: nothing to skip (nothing written: the folder is not the job's yet); train records
    # the overrides once it owns the folder
    assert done_job_metrics(_cfg(out, False), JOB) is None
    assert not out.exists()
    out.mkdir()
    record_job_overrides(_cfg(out, False), JOB)
    assert json.loads((out / JOB_OVERRIDES_FILE).read_text())["overrides"] == JOB
    _finish(out, {"val/f1": 0.5})
    # relaunch with skip_done=true (and ckpt_path=last): the stored metrics, no training
    again = [*JOB, "skip_done=true", "ckpt_path=last"]
    assert done_job_metrics(_cfg(out, True), again) == {"val/f1": 0.5}
    assert "is done: not trained again" in capsys.readouterr().err
    # without the switch the job trains as before
    assert done_job_metrics(_cfg(out, False), JOB) is None
    # a finished folder of other overrides (an Optuna trial of another set in folder 0): refused
    with pytest.raises(ConfigError, match="finished with other overrides"):
        done_job_metrics(_cfg(out, True), ["optimizer.lr=0.01", "seed=1", "experiment=cws_crf", "skip_done=true"])
    # a finished folder that recorded nothing (from before the record): refused, not guessed
    (out / JOB_OVERRIDES_FILE).unlink()
    with pytest.raises(ConfigError, match="holds no readable job_overrides.json"):
        done_job_metrics(_cfg(out, True), JOB)


def test_skip_done_trains_a_job_that_did_not_finish(tmp_path):
    out = tmp_path / "1"
    assert done_job_metrics(_cfg(out, False), JOB) is None
    out.mkdir()
    record_job_overrides(_cfg(out, False), JOB)
    RunStatus(out).failed("boom")
    assert done_job_metrics(_cfg(out, True), JOB) is None  # failed: run it again


def test_outside_a_multirun_nothing_happens(tmp_path):
    assert done_job_metrics(_cfg(tmp_path, True)) is None  # no Hydra job: no overrides to compare
    record_job_overrides(_cfg(tmp_path, False))  # no Hydra job: nothing to record
    assert not (tmp_path / JOB_OVERRIDES_FILE).exists()


APP = """
import json, os, sys
import hydra
from hydra.core.hydra_config import HydraConfig
from bertlab.utils.hydra_utils import register_resolvers
from bertlab.utils.run_status import RunStatus
from bertlab.utils.sweeps import multirun_summary

register_resolvers()


@hydra.main(version_base="1.3", config_path=sys.argv.pop(1), config_name="train")
def main(cfg):
    out = HydraConfig.get().runtime.output_dir
    if cfg.seed == 1:  # seed 1 finishes, seed 2 fails
        json.dump({"val/f1": 0.5}, open(os.path.join(out, "metrics.json"), "w"))
        RunStatus(out).done()
    else:
        RunStatus(out).failed("boom")
    return 0.0


main()
print(multirun_summary()[0])
"""


def test_a_multirun_ends_with_done_failed_and_the_report_command(tmp_path):
    """A real Hydra multirun with conf/hydra/default.yaml (its callback records the sweep dir,
    here the default, time-stamped one) of a tiny task: the last line counts the job folders."""
    app = tmp_path / "app.py"
    app.write_text(APP, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    cmd = [sys.executable, str(app), str(ROOT / "conf"), "-m", "seed=1,2,3", f"paths.log_dir={tmp_path}/logs"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert last == (
        f"bertlab: error: 2 job(s) of the multirun failed: 1 done / 2 failed in {sweep} (see their status.json); "
        f"report: python -m bertlab.report {sweep}"
    )


def test_summary_of_a_multirun_where_every_job_finished(tmp_path):
    for j in range(2):
        (tmp_path / str(j) / ".hydra").mkdir(parents=True)
        _finish(tmp_path / str(j), {})
    line, done, failed = multirun_summary(tmp_path)
    assert (done, failed) == (2, 0)
    assert line == f"bertlab: multirun: 2 done / 0 failed in {tmp_path}; report: python -m bertlab.report {tmp_path}"


@pytest.mark.parametrize("launcher", ["slurm", "slurm_gpu", "slurm_ddp", "submitit_slurm"])
def test_a_slurm_launcher_without_slurm_is_one_line(launcher, capsys):
    argv = ["-m", f"hydra/launcher={launcher}", "experiment=cws_crf", "seed=1,2"]
    with pytest.raises(SystemExit) as stop:
        precheck_launcher(ROOT / "conf", argv, which=lambda name: None)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bertlab: error: config key 'hydra/launcher': ")
    assert "sbatch is not on PATH" in err[0]
    # with sbatch, without -m, or another launcher: nothing to say
    precheck_launcher(ROOT / "conf", argv, which=lambda name: "/usr/bin/sbatch")
    precheck_launcher(ROOT / "conf", argv[1:], which=lambda name: None)
    precheck_launcher(ROOT / "conf", ["-m", "hydra/launcher=basic"], which=lambda name: None)
    assert capsys.readouterr().err == ""


def _checkout(path: Path) -> Path:
    (path / "conf").mkdir(parents=True)
    (path / "conf" / "train.yaml").write_text("seed: 1\n")
    (path / "src" / "bertlab").mkdir(parents=True)
    return path


def test_a_bertlab_imported_from_another_checkout_is_named(tmp_path):
    main, wt = _checkout(tmp_path / "main"), _checkout(tmp_path / "wt")
    (wt / "logs").mkdir()
    assert enclosing_checkout(wt / "logs") == wt.resolve()
    line = other_checkout_warning(cwd=wt / "logs", root=main)
    assert line.startswith(f"bertlab: warning: bertlab is imported from {main.resolve()}, not from this checkout")
    assert "\n" not in line
    assert other_checkout_warning(cwd=main, root=main) is None
    assert other_checkout_warning(cwd=tmp_path, root=main) is None  # not inside a checkout


def test_report_warns_when_run_from_another_checkout(tmp_path, monkeypatch, capsys):
    from bertlab.report import main

    wt = _checkout(tmp_path / "wt")
    monkeypatch.chdir(wt)
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("bertlab: warning: bertlab is imported from ") and err[1].startswith("bertlab: error:")
