"""scripts/gpu_check.sh's CPU fallback (--device cpu): the CRF benchmark, one bf16-mixed
training and the evaluation of its checkpoint on the device and the CPU, one table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_fallback_runs_and_prints_one_table(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [
        str(ROOT / "scripts" / "gpu_check.sh"),
        "--device",
        "cpu",
        "--tasks",
        "cws_crf",
        "--crf-repeats",
        "1",
        "--out",
        str(tmp_path),
        "--extra",
        "trainer.limit_train_batches=2",
        "--extra",
        "data.max_eval_sentences=8",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.strip() in proc.stdout
    assert "| 4 x 128 |" in table and "| 31 x 128 |" in table  # the CRF benchmark rows
    row = next(line for line in table.splitlines() if line.startswith("| cws_crf |"))
    assert row.endswith("| ok |")
    # both evaluations of the same checkpoint were written
    assert (tmp_path / "cws_crf" / "eval_cpu" / "metrics.json").is_file()


def test_gpu_check_refuses_unknown_tasks_and_a_missing_gpu():
    from bertlab import gpu_check

    assert gpu_check.main(["--device", "cpu", "--tasks", "nope", "--crf-repeats", "0"]) == 2
    import torch

    if not torch.cuda.is_available():
        assert gpu_check.main(["--crf-repeats", "0"]) == 2
