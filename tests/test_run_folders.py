"""Run folders are never overwritten by a run that cannot be right (issue 27 item 4): nothing
in an existing run folder is written before its lock is held and the resume is known valid.

* a resume whose config differs from the checkpoint's outside ``resume.may_change`` is
  refused naming the keys (also for a finished folder, which used to return its old metrics);
* a refused resume leaves ``.hydra/``, ``status.json``, ``metrics.json``, ``hparams.yaml`` and
  ``csv/metrics.csv`` as they were (Hydra no longer writes ``.hydra/`` at start);
* ``ckpt_path=last`` with nothing to resume is an error, before a run folder exists;
* ``bertlab.evaluate`` refuses a training run's folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import TINY_ENCODER, compose_cfg

from bertlab.train import config_changes, train
from bertlab.utils.errors import CheckpointError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
TINY = [
    "experiment=cws_crf",
    "debug=default",
    *TINY_ENCODER,
    "data.max_train_chars=3000",
    "data.max_eval_sentences=8",
    "trainer.limit_train_batches=2",
    "threads=1",
    "callbacks.rich_progress_bar=null",
]


def _digest(folder: Path) -> dict[str, str]:
    """Every file of a folder (the job log included: a refused attempt writes nothing) and its hash."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    train(compose_cfg(out, TINY))
    assert (out / "metrics.json").is_file() and (out / ".hydra" / "config.yaml").is_file()
    assert (out / "csv" / "metrics.csv").is_file()
    return out


def test_config_changes_names_the_differing_keys_outside_the_free_ones():
    saved = {"encoder": {"hidden_size": 32}, "optimizer": {"lr": 1e-3}, "paths": {"output_dir": "/a"}, "threads": 1}
    new = {"encoder": {"hidden_size": 128}, "optimizer": {"lr": 1e-3}, "paths": {"output_dir": "/b"}, "threads": 2}
    assert config_changes(saved, new, ["paths", "threads"]) == [("encoder.hidden_size", 32, 128)]
    assert config_changes(saved, {**new, "seed": 3}, ["paths", "threads", "encoder.*"]) == [("seed", None, 3)]


@pytest.mark.parametrize(
    "overrides",
    [["encoder.hidden_size=128", "optimizer.lr=0.01"], ["encoder.num_layers=2"], ["seed=7"]],
    ids=["new_size_and_lr", "new_model_size", "new_seed"],
)
def test_a_resume_with_another_config_is_refused_and_writes_nothing(finished_run, overrides):
    before = _digest(finished_run)
    with pytest.raises(ConfigError) as err:
        train(compose_cfg(finished_run, [*TINY, *overrides, "ckpt_path=last"]))
    for ov in overrides:
        assert ov.split("=")[0] in str(err.value)
    assert _digest(finished_run) == before  # config, status, metrics, hparams, csv history untouched


def test_the_same_config_on_a_finished_folder_returns_its_metrics(finished_run):
    before = _digest(finished_run)
    metrics, _ = train(compose_cfg(finished_run, [*TINY, "ckpt_path=last", "threads=2"]))  # threads may change
    assert "test" in metrics
    assert _digest(finished_run) == before


def test_ckpt_path_last_with_nothing_to_resume_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        train(compose_cfg(tmp_path, [*TINY, "ckpt_path=last"]))
    assert not (tmp_path / "status.json").exists()


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300
    )


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    return errors[0]


def test_cli_resume_refusals_are_one_line_before_any_folder_is_written(finished_run, tmp_path):
    logs = tmp_path / "logs"
    line = _one_error_line(_cli("bertlab.train", "experiment=cws_crf", "ckpt_path=last", f"paths.log_dir={logs}"))
    assert "hydra.run.dir" in line and not logs.exists()  # no new run folder
    empty = tmp_path / "empty"
    line = _one_error_line(_cli("bertlab.train", "experiment=cws_crf", "ckpt_path=last", f"hydra.run.dir={empty}"))
    assert "no complete checkpoint" in line and not empty.exists()
    before = _digest(finished_run)
    res = _cli("bertlab.train", *TINY, "encoder.hidden_size=128", "ckpt_path=last", f"hydra.run.dir={finished_run}")
    assert "encoder.hidden_size: 32 -> 128" in _one_error_line(res)
    assert _digest(finished_run) == before


def test_evaluate_refuses_a_training_run_folder(finished_run):
    before = _digest(finished_run)
    ckpt = next((finished_run / "checkpoints").glob("best-*.ckpt"))
    res = _cli("bertlab.evaluate", f"ckpt_path={ckpt}", f"hydra.run.dir={finished_run}")
    assert "holds a training run" in _one_error_line(res)
    assert _digest(finished_run) == before


def test_a_full_disk_is_one_line_naming_the_path_exit_2(tmp_path, monkeypatch, capsys):
    """ENOSPC while a run writes its files: one line naming the path, exit 2 (was a 63-line traceback)."""
    import errno

    import bertlab.train as train_mod
    from bertlab.utils.hydra_utils import exit_on_user_error

    target = str(tmp_path / ".hydra" / "config.yaml")

    def full(cfg, out_dir):
        raise OSError(errno.ENOSPC, "No space left on device", target)

    monkeypatch.setattr(train_mod, "save_hydra_files", full)
    with pytest.raises(SystemExit) as exit_info:
        exit_on_user_error(train)(compose_cfg(tmp_path, TINY))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1
    assert err[0].startswith("bertlab: error: No space left on device writing " + target)
    assert "free some space" in err[0]


def test_a_new_run_never_trains_over_a_folder_that_holds_one(finished_run):
    """No ckpt_path into a finished run's folder (hydra.run.dir=<run>, or a relaunched multirun
    on the same sweep dir): refused naming the folder, nothing written (was: exit 0, the run and
    its checkpoints silently replaced)."""
    before = _digest(finished_run)
    with pytest.raises(ConfigError, match="holds a run .status done"):
        train(compose_cfg(finished_run, [*TINY, "seed=5"]))
    assert _digest(finished_run) == before


def test_a_checkpoint_of_another_folder_resumes_into_a_new_one_with_the_same_config(finished_run, tmp_path):
    """The keys derived from the run folder (checkpoint dirpath, output dirs) may differ: only
    real config changes refuse such a resume."""
    ckpt = str(next((finished_run / "checkpoints").glob("*.ckpt")))
    metrics, _ = train(compose_cfg(tmp_path / "new", [*TINY, f"ckpt_path={ckpt}", "trainer.max_epochs=2"]))
    assert metrics["resumed_from"] == ckpt and "test" in metrics
    with pytest.raises(ConfigError, match="optimizer.lr"):
        train(compose_cfg(tmp_path / "other", [*TINY, f"ckpt_path={ckpt}", "optimizer.lr=0.5"]))
