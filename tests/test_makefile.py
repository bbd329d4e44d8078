"""The Makefile's housekeeping targets: `make clean` removes caches only; deleting results is
`make clean-logs`, which names the folder and deletes only with CONFIRM=1; `make help` states
where the report's folders are."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(folder), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "logs" / "cws_crf" / "runs" / "r1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "logs" / "cws_crf" / "runs" / "r1" / "checkpoints" / "last.ckpt").write_bytes(b"x" * 10)
    (tmp_path / ".pytest_cache").mkdir()
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"x")
    return tmp_path


def test_make_clean_removes_caches_and_keeps_every_run(tree):
    proc = _make(tree, "clean")
    assert proc.returncode == 0, proc.stderr
    assert not (tree / ".pytest_cache").exists() and not (tree / "src" / "pkg" / "__pycache__").exists()
    assert (tree / "logs" / "cws_crf" / "runs" / "r1" / "checkpoints" / "last.ckpt").is_file()


def test_make_clean_logs_names_the_folder_and_deletes_only_with_confirm(tree):
    proc = _make(tree, "clean-logs")
    assert proc.returncode != 0
    assert f"would delete {tree / 'logs'}" in proc.stdout and "make clean-logs CONFIRM=1" in proc.stdout
    assert (tree / "logs" / "cws_crf" / "runs" / "r1" / "checkpoints" / "last.ckpt").is_file()
    proc = _make(tree, "clean-logs", "CONFIRM=1")
    assert proc.returncode == 0, proc.stderr
    assert f"deleting {tree / 'logs'}" in proc.stdout and not (tree / "logs").exists()


def test_make_help_names_the_report_folders():
    out = _make(ROOT, "help").stdout
    report = next(line for line in out.splitlines() if line.split()[:2] == ["make", "report"])
    assert "Optuna" in report and "DIR=logs/<task>/multiruns/" in report
    assert "clean-logs" in out
