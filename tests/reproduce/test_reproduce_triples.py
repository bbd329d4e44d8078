"""python -m bertlab.reproduce triples: the results table from the run folders under --dir."""

import json

from bertlab.reproduce.__main__ import main


def _run(tmp_path, name, test):
    d = tmp_path / "runs" / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"test": test, "wall_seconds": 12.0}))
    return d


def test_table_rows_and_baseline(tmp_path, capsys):
    a = _run(
        tmp_path,
        "scratch",
        {
            "precision": 0.5,
            "recall": 0.25,
            "f1": 1 / 3,
            "n_gold": 8,
            "n_texts": 4,
            "n_gold_not_found": 1,
            "n_gold_beyond_max_len": 2,
            "texts_per_s": 40.0,
            "evaluated_on": "held-out records",
            "baseline_precision": 0.1,
            "baseline_recall": 0.2,
            "baseline_f1": 0.1333,
        },
    )
    b = _run(
        tmp_path,
        "overfit",
        {
            "precision": 1.0,
            "recall": 0.95,
            "f1": 0.97,
            "n_gold": 8,
            "n_texts": 4,
            "evaluated_on": "training records (overfit check)",
        },
    )
    out = tmp_path / "res" / "table.md"
    assert a.parent == b.parent
    assert main(["triples", "--report-only", "--dir", str(a.parent), "--out", str(out)]) == 0
    text = out.read_text()
    rows = text.strip().splitlines()
    assert len(rows) == 5
    assert rows[2].startswith(
        "| scratch | held-out records (4 records) | 0.5000 | 0.2500 | 0.3333 | 8 | 1 / 2 | 40.0 | 12 |"
    )
    assert "training records (overfit check)" in rows[3] and "0.9700" in rows[3]
    assert rows[4].startswith("| dictionary baseline") and "0.1333" in rows[4]


def test_missing_run_is_one_error_line(tmp_path, capsys):
    assert main(["triples", "--report-only", "--dir", str(tmp_path)]) == 2
    assert "no metrics.json" in capsys.readouterr().err
