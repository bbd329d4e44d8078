"""Soak test: three consecutive short trainings + evaluations in one process, and a 4-job
multirun (basic launcher, one process), leave no growing memory, no leaked child processes
and no growing number of open files.

Peak RSS per job is the process's high-water mark (VmHWM) reset at the start of each job
(``/proc/self/clear_refs``), printed as a table (``pytest -s tests/test_soak.py``) and
written to ``<tmp>/soak_resources.json``. Linux only (reads /proc)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
    "callbacks.transition_heatmap=null",
    "data.max_train_chars=5000",
    "data.max_eval_sentences=20",
    "threads=1",
    "trainer.limit_train_batches=6",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2",
    "trainer.val_check_interval=1.0",
]
MIB = 1024 * 1024
#: RSS may grow this much from the end of run 2 to the end of run 3 (allocator noise; a leak of
#: a model, a DataLoader or a dataset per run is far above it)
MAX_GROWTH_MIB = 40
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")]


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed. The same reset
    the TokenThroughput callback makes at every fit start (``time/peak_memory_mb``)."""
    from bertlab.callbacks.throughput import reset_peak_memory

    return reset_peak_memory()


def children(pid: int | None = None) -> list[int]:
    """Child processes of ``pid`` (default: this process), over all its threads."""
    pid = pid or os.getpid()
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def live_objects() -> dict[str, int]:
    """Live trainers, LightningModules, DataModules, DataLoaders and tensors (a leak of a whole
    run shows here even when it is too small to see in the RSS)."""
    import torch

    kinds = {
        "trainers": pl.Trainer,
        "modules": pl.LightningModule,
        "datamodules": pl.LightningDataModule,
        "loaders": torch.utils.data.DataLoader,
        "tensors": torch.Tensor,
    }
    counts = dict.fromkeys(kinds, 0)
    for obj in gc.get_objects():
        for name, cls in kinds.items():
            if isinstance(obj, cls):
                counts[name] += 1
    return counts


def resources() -> dict[str, Any]:
    gc.collect()
    return {
        "rss_mib": _status_kib("VmRSS") / 1024,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "open_fds": len(os.listdir("/proc/self/fd")),
        "children": len(children()),
        **live_objects(),
    }


class ResourceProbe(pl.Callback):
    """In a multirun job: reset the peak at the start of fitting, record this process's
    resources at the end of testing into ``<run folder>/resources.json``."""

    def __init__(self, path: str):
        self.path = path

    def setup(self, trainer, pl_module, stage):
        if stage == "fit":
            reset_peak()

    def teardown(self, trainer, pl_module, stage):
        if stage == "test":
            Path(self.path).write_text(json.dumps(resources()))


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["job  peak RSS MiB  RSS after MiB  open fds  children  trainers  modules  loaders  tensors"]
    lines += [
        f"{r['job']:<4} {r['peak_rss_mib']:>12.1f} {r['rss_mib']:>14.1f} {r['open_fds']:>9} {r['children']:>9}"
        f" {r['trainers']:>9} {r['modules']:>8} {r['loaders']:>8} {r['tensors']:>8}"
        for r in rows
    ]
    return "\n".join(lines)


def _check_no_growth(rows: list[dict[str, Any]], what: str) -> None:
    print(f"\n{what}\n{_table(rows)}")
    growth = rows[2]["rss_mib"] - rows[1]["rss_mib"]
    assert growth < MAX_GROWTH_MIB, f"{what}: RSS grew {growth:.1f} MiB from job 2 to job 3\n{_table(rows)}"
    assert rows[2]["peak_rss_mib"] - rows[1]["peak_rss_mib"] < MAX_GROWTH_MIB, _table(rows)
    assert rows[-1]["open_fds"] <= rows[1]["open_fds"], f"{what}: open files grow\n{_table(rows)}"
    assert all(r["children"] == rows[0]["children"] for r in rows), f"{what}: child processes leaked\n{_table(rows)}"
    for kind in ("trainers", "modules", "datamodules", "loaders", "tensors"):
        assert rows[2][kind] <= rows[1][kind], f"{what}: live {kind} grow from job 2 to job 3\n{_table(rows)}"


def test_three_trainings_and_evaluations_in_one_process(tmp_path):
    from tests.conftest import compose_cfg

    from bertlab.evaluate import evaluate
    from bertlab.train import train

    base_children = len(children())
    rows = []
    for i in range(3):
        reset_peak()
        cfg = compose_cfg(tmp_path / f"run{i}", TINY)
        metrics, objs = train(cfg)
        del objs
        ecfg = compose_cfg(
            tmp_path / f"eval{i}",
            [f"ckpt_path={metrics['test_checkpoint']}", "callbacks.rich_progress_bar=null"],
            config_name="eval",
        )
        emetrics = evaluate(ecfg)
        assert emetrics["test"]["f1"] == pytest.approx(metrics["test"]["f1"])
        rows.append({"job": i, **resources()})
    assert rows[0]["children"] == base_children
    (tmp_path / "soak_resources.json").write_text(json.dumps({"in_process": rows}, indent=1))
    _check_no_growth(rows, "3 x (train + evaluate) in one process")


def test_four_job_multirun_in_one_process(tmp_path):
    sweep = tmp_path / "sweep"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        "-m",
        *TINY,
        "seed=1,2,3,4",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path}",
        "+callbacks.probe._target_=tests.test_soak.ResourceProbe",
        "+callbacks.probe.path=${paths.output_dir}/resources.json",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    rows = []
    for job in range(4):
        assert json.loads((sweep / str(job) / "status.json").read_text())["status"] == "done"
        rows.append({"job": job, **json.loads((sweep / str(job) / "resources.json").read_text())})
    (tmp_path / "soak_resources.json").write_text(json.dumps({"multirun": rows}, indent=1))
    _check_no_growth(rows, "4-job multirun (basic launcher)")
    # nothing it started outlives it: no process still runs with the sweep folder on its command line
    left = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if str(sweep).encode() in (p / "cmdline").read_bytes():
                    left.append(int(p.name))
            except OSError:
                pass
    assert left == [], f"processes left behind by the multirun: {left}"
