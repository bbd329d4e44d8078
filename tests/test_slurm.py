"""SLURM through hydra-submitit-launcher against a real local cluster (scripts/slurm_local.sh):
a 2-job multirun, a hard-killed job reported FAILED (not a hang), a 2-task DDP job (gloo
across 2 SLURM tasks) that agrees with a 1-process run, a real requeue on the
requeue signal resuming from Lightning's HPC checkpoint, and the #SBATCH lines that the GPU
launchers generate (checked through the real launcher with a recording `sbatch`)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
# one worker runs every test of this file under pytest-xdist: they share the one local cluster
pytestmark = pytest.mark.xdist_group("slurm")

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
    "data.max_train_chars=5000",
    "data.max_eval_sentences=20",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.val_check_interval=1.0",
]
SMALL_JOB = [
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=10",
]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline")


def _cluster_up() -> bool:
    if not shutil.which("sbatch"):
        return False
    return (
        subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode == 0
        and subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True).returncode == 0
    )


def _skip(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running local cluster: used as is, or started with scripts/slurm_local.sh (root)."""
    if _cluster_up():
        yield
        return
    if not shutil.which("slurmctld"):
        _skip("slurm is not installed (sudo scripts/slurm_local.sh install)")
    if os.geteuid() != 0:
        _skip("the local SLURM cluster needs root to start its daemons (sudo scripts/slurm_local.sh start)")
    proc = subprocess.run([str(ROOT / "scripts" / "slurm_local.sh"), "start"], capture_output=True, text=True)
    if proc.returncode != 0 or not _cluster_up():
        pytest.fail(f"scripts/slurm_local.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    yield
    subprocess.run([str(ROOT / "scripts" / "slurm_local.sh"), "stop"], capture_output=True)


def _sacct(job: str) -> dict[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("|")[:2] for line in out.splitlines() if line)


def _sacct_settled(job: str, n_tasks: int, timeout: float = 90.0) -> dict[str, str]:
    """sacct once every task of `job` has a final state. submitit returns as soon as the result
    pickles are written, while slurmctld may still list the tasks RUNNING/COMPLETING (epilogue,
    accounting lag: seen in CI), so the final states are polled for, not read once."""
    deadline = time.time() + timeout
    while True:
        states = _sacct(job)
        settled = len(states) == n_tasks and not any(
            s.split()[0] in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED") for s in states.values()
        )
        if settled or time.time() > deadline:
            return states
        time.sleep(1)


def _array_id(sweep: Path) -> str:
    subs = [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name]
    assert subs, f"no submitit job folders under {sweep}/.submitit"
    return subs[0].split("_")[0]


@pytest.mark.slurm
@pytest.mark.slow
def test_two_job_multirun_on_slurm(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab.train", "-m", *SMALL_JOB, *TINY, "seed=1,2", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    array = _array_id(sweep)
    assert _sacct_settled(array, 2) == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED"}
    for job in (0, 1):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        # submitit's result pickle holds Hydra's JobReturn: the optimized metric of that job
        with open(sweep / ".submitit" / f"{array}_{job}" / f"{array}_{job}_0_result.pkl", "rb") as f:
            status, ret = pickle.load(f)
        assert status == "success"
        assert ret.return_value == pytest.approx(metrics["val/f1"])
        assert f"seed={job + 1}" in ret.overrides
        assert "test" in metrics and metrics["test"]["n_sentences"] == 20
    # the job ran with SLURM's environment: Lightning saw SLURM, no requeue happened
    log = (sweep / ".submitit" / f"{array}_0" / f"{array}_0_0_log.err").read_text()
    assert "Traceback" not in log


@pytest.mark.slurm
@pytest.mark.slow
def test_hard_killed_job_is_reported_failed_and_the_other_result_is_kept(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    start = time.time()
    proc = subprocess.Popen(
        # job 1 runs 300 tiny epochs (a minute or more) so that the kill lands while it runs: with
        # the same short job on an idle machine it could finish between sacct and scancel
        [
            sys.executable,
            "-m",
            "bertlab.train",
            "-m",
            *SMALL_JOB,
            *TINY,
            "trainer.max_epochs=1,300",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = None
        while time.time() - start < 120 and victim is None:
            time.sleep(1)
            if (sweep / ".submitit").is_dir() and any("_" in p.name for p in (sweep / ".submitit").iterdir()):
                array = _array_id(sweep)
                if _sacct(array).get(f"{array}_1") == "RUNNING":
                    victim = f"{array}_1"
        assert victim, "job 1 never started"
        # SIGKILL every process of the job (batch script and step): what the OOM killer does
        subprocess.run(["scancel", "--signal=KILL", "--full", victim], check=True)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "FAILED" in err or "has not produced any output" in err, err[-2000:]
    states = _sacct_settled(array, 2)
    assert states[f"{array}_1"].split()[0] in ("FAILED", "CANCELLED") and states[f"{array}_0"] == "COMPLETED"
    assert json.loads((sweep / "0" / "metrics.json").read_text())["test"]["n_sentences"] == 20
    assert not (sweep / "1" / "metrics.json").exists()


@pytest.mark.slurm
@pytest.mark.slow
def test_requeue_signal_saves_requeues_and_resumes_from_the_hpc_checkpoint(slurm_cluster, tmp_path):
    """Lightning owns requeue: on SIGUSR1 it saves hpc_ckpt_1.ckpt and runs `scontrol
    requeue`; the requeued job runs the same Hydra job again and resumes with global_step > 0."""
    import torch

    sweep = tmp_path / "sweep"
    longer = [a for a in TINY if not a.startswith("trainer.limit_train_batches")] + [
        "data.max_train_chars=60000",
        "trainer.max_epochs=15",
        "callbacks.throughput=null",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bertlab.train", "-m", *SMALL_JOB, *longer, "seed=3", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.time()
    try:
        job = None
        while time.time() - start < 120:
            time.sleep(1)
            # one job: submitted as a plain job (no array), folder .submitit/<jobid>
            subs = (
                [p.name for p in (sweep / ".submitit").glob("[0-9]*") if (p / f"{p.name}_submitted.pkl").is_file()]
                if (sweep / ".submitit").is_dir()
                else []
            )
            if subs:
                job = subs[0]
                # training is under way once the first validation wrote its transition matrix
                if list((sweep / "0" / "transitions").glob("step*.csv")):
                    break
        assert job, "the job never started training"
        time.sleep(2)
        subprocess.run(["scancel", "--signal=USR1", job], check=True)
        out, err_text = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if job and proc.returncode != 0:
            subprocess.run(["scancel", job])
    assert proc.returncode == 0, err_text[-3000:]
    hpc = sweep / "0" / "hpc_ckpt_1.ckpt"
    assert hpc.is_file()
    step = torch.load(hpc, map_location="cpu", weights_only=False)["global_step"]
    assert step > 0
    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text(errors="replace")
    log += (sweep / ".submitit" / job / f"{job}_0_log.err").read_text(errors="replace")
    assert "Requeued SLURM job" in log or "requeue" in log.lower()
    assert "Restoring states from the checkpoint path at" in log and "hpc_ckpt_1.ckpt" in log
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["test"]["n_sentences"] == 20


@pytest.mark.slurm
@pytest.mark.slow
def test_two_task_ddp_job_on_slurm_matches_a_one_process_run(slurm_cluster, tmp_path):
    """hydra/launcher=slurm_ddp_cpu + trainer=ddp_cpu: one job, 2 SLURM tasks (srun starts both,
    1 CPU each), gloo DDP across them (Lightning's SLURMEnvironment: it launches nothing).
    Training is sharded: 2 tasks x batch 4 train like 1 process x batch 8 (no dropout), so
    the metrics agree with that 1-process run."""
    same = [a for a in TINY if not a.startswith("data.max_eval_sentences")] + [
        "data.eval_batch_size=5",
        "data.max_eval_sentences=23",
        "trainer.deterministic=true",
        "seed=7",
        "encoder.hidden_dropout_prob=0",
        "encoder.attention_probs_dropout_prob=0",
        "model.dropout=0",
    ]
    one_dir = tmp_path / "one"
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab.train", *same, "trainer=cpu", "data.batch_size=8", f"hydra.run.dir={one_dir}"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((one_dir / "metrics.json").read_text())

    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertlab.train",
            "-m",
            "hydra/launcher=slurm_ddp_cpu",
            "trainer=ddp_cpu",
            "hydra.launcher.mem_gb=4",
            "hydra.launcher.timeout_min=10",
            *same,
            "data.batch_size=4",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = next(p.name for p in (sweep / ".submitit").iterdir() if p.name[:1].isdigit())
    assert _sacct_settled(job, 1) == {job: "COMPLETED"}
    text = (sweep / ".submitit" / job / f"{job}_0_log.err").read_text(errors="replace")
    text += (sweep / ".submitit" / job / f"{job}_1_log.err").read_text(errors="replace")
    text += "".join((sweep / ".submitit" / job / f"{job}_{t}_log.out").read_text(errors="replace") for t in (0, 1))
    # two SLURM tasks formed one gloo group of 2; each evaluated its own batches
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in text, text[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in text, text[-3000:]
    assert "test: rank 1 of 2 evaluated" in text and "test: rank 0 of 2 evaluated" in text
    two = json.loads((sweep / "0" / "metrics.json").read_text())
    for split in ("val_last", "test"):
        for k in ("n_sentences", "n_gold", "n_pred", "n_correct"):
            assert two[split][k] == one[split][k], (split, k)
        for k in ("precision", "recall", "f1"):
            assert two[split][k] == pytest.approx(one[split][k], abs=1e-6), (split, k)
    assert "global batch = 8 (world_size 2 x batch 4" in text
    print(
        {
            name: {s: {k: m[s][k] for k in ("n_pred", "n_correct", "f1")} for s in ("val_last", "test")}
            | {"train/loss": m["train/loss"]}
            for name, m in (("1 process", one), ("2 SLURM tasks", two))
        }
    )
    with open(sweep / ".submitit" / job / f"{job}_0_result.pkl", "rb") as f:
        status, ret = pickle.load(f)
    assert status == "success" and ret.return_value == pytest.approx(one["val/f1"], abs=1e-6)


def _submission_script(tmp_path: Path, overrides: list[str]) -> str:
    """Run the real launcher with an `sbatch` that refuses the job; return the script it got."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: refused by test' >&2\nexit 1\n")
    (bindir / "sbatch").chmod(0o755)
    sweep = tmp_path / "sweep"
    env = dict(_env(), PATH=f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab.train", "-m", *overrides, "seed=1", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "refused by test" in proc.stderr, proc.stderr[-2000:]
    scripts = list((sweep / ".submitit").glob(".submission_file_*.sh"))
    assert len(scripts) == 1
    return scripts[0].read_text()


@pytest.mark.slow
def test_gpu_launcher_sbatch_lines(tmp_path):
    text = _submission_script(
        tmp_path,
        [
            "hydra/launcher=slurm_gpu",
            "trainer=gpu",
            "experiment=cws_crf",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.account=proj1",
            "hydra.launcher.qos=high",
            "hydra.launcher.timeout_min=240",
            "+hydra.launcher.additional_parameters.mail-type=END",
        ],
    )
    lines = set(text.splitlines())
    for want in (
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj1",
        "#SBATCH --qos=high",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR1@120",
        "#SBATCH --mail-type=END",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
    ):
        assert want in lines, (want, text)
    assert not any(line.startswith("#SBATCH --signal=USR2") for line in lines)  # one requeue owner


@pytest.mark.slow
def test_ddp_launcher_sbatch_lines_follow_the_trainer(tmp_path):
    text = _submission_script(
        tmp_path,
        [
            "hydra/launcher=slurm_ddp",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "experiment=cws_crf",
            "hydra.launcher.signal_delay_s=300",
        ],
    )
    lines = set(text.splitlines())
    for want in (
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --nodes=2",
        "#SBATCH --signal=USR1@300",
    ):
        assert want in lines, (want, text)
    assert "srun --unbuffered" in text  # one task per GPU started by srun
