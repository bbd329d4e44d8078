"""Every table bertlab renders (each ``python -m bertlab.reproduce <name>`` table and
``python -m bertlab.report``), from the fabricated run folders of ``golden_runs.py``, is
byte-identical to ``golden/<name>.md``: the output of the renderers as they were before
reproduce/ and reporting/ were split (issue 30 §3). ``golden/outcomes.json`` holds each
command's exit status and the files it wrote (the PNGs are not compared byte by byte).

A deliberate change of a table regenerates the files: ``python tests/reporting/test_golden_tables.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from golden_runs import TABLES, run_command  # noqa: E402

GOLDEN = HERE / "golden"


def render(name: str, folder: Path) -> tuple[str, int, list[str]]:
    """Build the fixture of ``name`` in ``folder``, run its command, return (the markdown with
    the folder as ``<DIR>``, exit status, the new files' names relative to the folder)."""
    build, argv, table = TABLES[name]
    folder.mkdir(parents=True, exist_ok=True)
    build(folder)
    before = {p for p in folder.rglob("*") if p.is_file()}
    rc = run_command(argv, folder)
    md = (folder / table).read_text(encoding="utf-8").replace(str(folder), "<DIR>")
    new = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p not in before)
    return md, rc, new


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_is_byte_identical_to_its_golden_output(name, tmp_path):
    md, rc, files = render(name, tmp_path / name)
    assert md == (GOLDEN / f"{name}.md").read_text(encoding="utf-8")
    assert {"rc": rc, "files": files} == json.loads((GOLDEN / "outcomes.json").read_text(encoding="utf-8"))[name]


if __name__ == "__main__":  # regenerate the golden files
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    outcomes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(TABLES):
            md, rc, files = render(name, Path(tmp) / name)
            (GOLDEN / f"{name}.md").write_text(md, encoding="utf-8")
            outcomes[name] = {"rc": rc, "files": files}
    (GOLDEN / "outcomes.json").write_text(json.dumps(outcomes, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(outcomes)} golden tables into {GOLDEN}")
