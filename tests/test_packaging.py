"""Packaging invariants: environment.yml pins == pyproject pins; only pytorch_lightning imported."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", r.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_environment_yml_matches_pyproject():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = _pins(proj["dependencies"] + [r for extra in proj["optional-dependencies"].values() for r in extra])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = _pins(pip_section)
    assert got == want
    assert all("==" in r for r in proj["dependencies"]), "every runtime dependency is pinned"


def test_no_lightning_pytorch_imports():
    bad = []
    for path in (ROOT / "src").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"^\s*(import|from)\s+lightning(\.pytorch|\s|$)", line) or "lightning.pytorch" in line:
                bad.append(f"{path}:{n}: {line.strip()}")
    assert not bad, "import pytorch_lightning only:\n" + "\n".join(bad)


def test_test_files_have_unique_basenames():
    """pytest's default import mode refuses two test modules with the same basename."""
    from collections import Counter

    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
