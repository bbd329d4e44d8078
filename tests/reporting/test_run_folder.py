"""reporting/run_folder.py: the one run loader every table reads through (config, metrics,
history read once; a damaged run folder is one error line naming the file)."""

from __future__ import annotations

import builtins
import collections
import io
import json
import re
import sys
from pathlib import Path

import pytest

from bertlab.reporting.run_folder import read_run
from bertlab.utils.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_runs import TABLES, run_command  # noqa: E402

RUN_FILES = ("config.yaml", "metrics.json", "metrics.csv", "overrides.yaml")


def test_a_run_reads_its_files_and_says_why_it_failed(tmp_path):
    run = read_run(tmp_path)  # nothing there: a failed run, not an exception
    assert not run.ok and run.failure == "no metrics.json (the job did not finish)"
    assert run.config == {} and run.overrides == [] and run.history == [] and run.test == {}
    with pytest.raises(DataError, match=r"metrics\.json: no metrics\.json"):
        run.finished_metrics()
    (tmp_path / "status.json").write_text(json.dumps({"status": "failed", "error": "disk full"}))
    (tmp_path / "metrics.json").write_text("{bad")
    run = read_run(tmp_path)
    assert run.failure.startswith("metrics.json unreadable (") and run.failure.endswith("): disk full")
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"f1": 0.5}}))
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("row: ${x}\nseed: 3\nhead:\n  type: crf\n")
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- head=crf\n- ~optimizer.x\n- +a.b=1\n")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,step,val/f1,note\n0,9,0.5,x\n1,19,,y\n1,19,0.7,\n")
    run = read_run(tmp_path)
    assert run.ok and run.finished_metrics() == {"test": {"f1": 0.5}} and run.test == {"f1": 0.5}
    assert run.config == {"row": "${x}", "seed": 3, "head": {"type": "crf"}}  # interpolations kept
    assert run.cfg("head.type") == "crf" and run.cfg("head.nope", 1) == 1 and run.require("seed") == 3
    assert run.params == {"head": "crf", "optimizer.x": "(deleted)", "a.b": "1"}
    assert run.values("val/f1") == [(0.0, 0.5), (1.0, 0.7)] and run.last("val/f1") == 0.7
    with pytest.raises(DataError, match=r"config\.yaml: no optimizer\.lr"):
        run.require("optimizer.lr")


@pytest.mark.parametrize(
    "where, text, match",
    [
        (".hydra/config.yaml", "seed: [1\n", r"\.hydra/config\.yaml:2: not YAML \(expected ',' or ']'"),
        (".hydra/config.yaml", "- a\n- b\n", r"\.hydra/config\.yaml: not a config"),
        (".hydra/overrides.yaml", "a: 1\n", r"\.hydra/overrides\.yaml: expected a YAML list"),
    ],
)
def test_a_damaged_run_folder_is_one_error_line_naming_the_file(tmp_path, capsys, where, text, match):
    """Through the CLI: the CRF table of a sweep one of whose runs has a damaged file exits 2
    with one ``bertlab: error:`` line naming that file."""
    from bertlab.reproduce.__main__ import main

    build, _, _ = TABLES["crf_claim"]
    build(tmp_path)
    (tmp_path / "1" / where).write_text(text, encoding="utf-8")
    assert main(["crf_claim", "--report-only", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bertlab: error: {tmp_path / '1' / where}")
    assert re.search(match, err[0])


@pytest.mark.parametrize("name", ["crf", "orthogonality", "albert", "report", "generation"])
def test_every_run_file_is_read_once_per_table(name, tmp_path, monkeypatch):
    """Rendering a table opens each run's config, metrics, history and overrides at most once
    (the seed-sweep tables used to parse a run's config twice: its row, then the unseen-text
    accuracy)."""
    build, argv, _ = TABLES[name]
    build(tmp_path)
    opened: collections.Counter[str] = collections.Counter()
    real = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).name in RUN_FILES:
            opened[str(file)] += 1
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    run_command(argv, tmp_path)
    assert opened and max(opened.values()) == 1, [f for f, n in opened.items() if n > 1]


def test_the_row_label_of_the_crf_tables_is_read_in_one_place(tmp_path, monkeypatch):
    """``row_label`` is the one reader of the run's row name (a change of the config key is an
    edit there): the tables follow it."""
    import bertlab.reporting.crf as crf
    from bertlab.reproduce.__main__ import main

    TABLES["crf"][0](tmp_path)
    monkeypatch.setattr(crf, "row_label", lambda run: "R" + str(run.cfg("seed")))
    assert main(["crf", "--report-only", str(tmp_path)]) == 0
    md = (tmp_path / "crf_layer1.md").read_text(encoding="utf-8")
    arms = [line.split("|")[1].strip() for line in md.split("Per run")[0].splitlines() if line.startswith("| R")]
    assert arms == ["R1", "R2"]
