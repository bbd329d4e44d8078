"""The run-folder lock (bertlab.utils.run_lock, issue 21): one writer per run folder."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from bertlab.utils.run_lock import LOCK_FILE, RunLock, RunLockError, read_lock


def _owner(pid: int, **extra) -> dict:
    return {"host": socket.gethostname(), "pid": pid, "started": "2026-01-01T00:00:00+00:00", **extra}


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_created_exclusively_and_released(tmp_path):
    lock = RunLock(tmp_path).acquire()
    owner = read_lock(str(tmp_path / LOCK_FILE))
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and "started" in owner
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_live_owner_stops_a_second_process_naming_it(tmp_path, live_pid, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    (tmp_path / LOCK_FILE).write_text(json.dumps(_owner(live_pid)))
    with pytest.raises(RunLockError, match=rf"run folder {tmp_path} is in use by another process \(pid {live_pid} on"):
        RunLock(tmp_path).acquire()
    assert read_lock(str(tmp_path / LOCK_FILE))["pid"] == live_pid  # untouched


def test_an_owner_on_another_host_is_not_taken_over(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    (tmp_path / LOCK_FILE).write_text(json.dumps({**_owner(1), "host": "elsewhere"}))
    with pytest.raises(RunLockError, match="pid 1 on elsewhere"):
        RunLock(tmp_path).acquire()


def test_a_dead_owner_is_taken_over_with_a_warning(tmp_path, dead_pid, caplog, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    (tmp_path / LOCK_FILE).write_text(json.dumps(_owner(dead_pid)))
    with caplog.at_level(logging.WARNING, logger="bertlab.utils.run_lock"):
        lock = RunLock(tmp_path).acquire()
    assert read_lock(str(tmp_path / LOCK_FILE))["pid"] == os.getpid()
    assert any("taking over the lock of pid" in r.getMessage() and "gone" in r.getMessage() for r in caplog.records)
    lock.release()


def test_a_requeued_slurm_job_takes_over_its_own_lock(tmp_path, live_pid, monkeypatch):
    # the requeued job may run on another node: same SLURM_JOB_ID = the same run
    (tmp_path / LOCK_FILE).write_text(json.dumps({**_owner(live_pid, slurm_job_id="4242"), "host": "node07"}))
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    lock = RunLock(tmp_path).acquire()
    assert read_lock(str(tmp_path / LOCK_FILE))["slurm_job_id"] == "4242"
    assert read_lock(str(tmp_path / LOCK_FILE))["pid"] == os.getpid()
    lock.release()
    monkeypatch.setenv("SLURM_JOB_ID", "4243")  # another job: refused
    (tmp_path / LOCK_FILE).write_text(json.dumps({**_owner(live_pid, slurm_job_id="4242"), "host": "node07"}))
    with pytest.raises(RunLockError, match="SLURM job 4242"):
        RunLock(tmp_path).acquire()


def test_only_rank_zero_takes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    lock = RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists() and not lock.held
    monkeypatch.setenv("RANK", "0")
    lock = RunLock(tmp_path).acquire()
    assert lock.held
    lock.release()


def test_train_refuses_a_folder_in_use_before_writing_anything(make_cfg, live_pid, monkeypatch):
    from bertlab.train import train

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    cfg = make_cfg(["experiment=cws_crf", "debug=fdr"])
    out = cfg.paths.output_dir
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, LOCK_FILE), "w") as fh:
        json.dump(_owner(live_pid), fh)
    with pytest.raises(RunLockError, match=f"pid {live_pid}"):
        train(cfg)
    assert sorted(os.listdir(out)) == [LOCK_FILE]  # no status.json, no log, no checkpoint of ours


def test_second_cli_process_on_the_same_folder_exits_2_with_one_line(tmp_path, live_pid):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(json.dumps(_owner(live_pid)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("SLURM_JOB_ID", None)
    res = subprocess.run(
        [sys.executable, "-m", "bertlab.train", "experiment=cws_crf", f"hydra.run.dir={run}", "ckpt_path=last"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(errors) == 1 and f"is in use by another process (pid {live_pid} on" in errors[0]
    assert "Traceback" not in res.stderr and not (run / "status.json").exists()
    assert not (run / ".hydra").exists()  # stopped before Hydra wrote into the other run's folder
