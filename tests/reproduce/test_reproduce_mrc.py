"""python -m bertlab.reproduce mrc: the MLM reading-comprehension results table from run folders
(fixture metrics.json files)."""

import json

from bertlab.reporting.mrc import load_speed, table
from bertlab.reporting.run_folder import read_run
from bertlab.reproduce.__main__ import main

BOUNDS = {
    "baseline_acc": 0.05,
    "baseline_f1": 0.25,
    "baseline_final": 0.15,
    "oracle_acc": 0.9,
    "oracle_f1": 0.95,
    "oracle_final": 0.925,
}


def _run(tmp_path, name, test, steps=100):
    d = tmp_path / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(
        json.dumps(
            {
                "test": test,
                "wall_seconds": 61.4,
                "validation_clock": [{"step": 50, "fit_seconds": 1.0}, {"step": steps, "fit_seconds": 2.0}],
            }
        )
    )
    return d


def test_rows_bounds_from_the_held_out_run_and_speed(tmp_path):
    over = _run(
        tmp_path,
        "o",
        {
            "acc": 0.95,
            "f1": 0.97,
            "final": 0.96,
            "no_answer_rate": 0.0,
            "n_questions": 200,
            "evaluated_on": "training questions (overfit check)",
            **{k: 0.0 for k in BOUNDS},
            "oracle_acc": 0.905,
            "oracle_f1": 0.98,
        },
        steps=700,
    )
    held = _run(
        tmp_path,
        "h",
        {
            "acc": 0.3,
            "f1": 0.5,
            "final": 0.4,
            "no_answer_rate": 0.125,
            "cmrc_em": 0.25,
            "cmrc_f1": 0.45,
            "n_questions": 412,
            "evaluated_on": "held-out questions",
            **BOUNDS,
        },
    )
    speed = tmp_path / "bench.json"
    speed.write_text(
        json.dumps(
            {
                "questions": 100,
                "passages": 230,
                "threads": 2,
                "constrained": {"questions_per_s": 12.0, "final": 0.4},
                "autoregressive": {"questions_per_s": 2.0, "final": 0.41},
                "speedup_constrained_vs_autoregressive": 6.0,
            }
        )
    )
    # the overfit run listed first: the bounds must still come from the held-out run
    rows = table(
        [("overfit", read_run(over).metrics), ("scratch", read_run(held).metrics)], load_speed(str(speed))
    ).splitlines()
    assert rows[2] == (
        "| overfit | training questions (overfit check) (200 questions) | - | - | 0.9500 | 0.9700 | 0.9600 | 0.0000 "
        "| 0.9050 / 0.9800 | 700 | 61 |"
    )
    assert rows[3] == (
        "| scratch | held-out questions (412 questions) | 0.2500 | 0.4500 | 0.3000 | 0.5000 | 0.4000 | 0.1250 "
        "| 0.9000 / 0.9500 | 100 | 61 |"
    )
    # baseline and ceiling come from the held-out run, not from the overfit run listed first
    assert (
        rows[4].startswith("| trivial baseline")
        and "held-out questions (412 questions) | - | - | 0.0500 | 0.2500 | 0.1500" in rows[4]
    )
    assert rows[5].startswith("| ceiling of the layout") and "| 0.9000 | 0.9500 | 0.9250 |" in rows[5]
    text = "\n".join(rows)
    assert (
        "| MLM constrained (one pass, the post's) | 12.00 | - | - | 0.4000 |" in text and "autoregressive: 6.0x" in text
    )


def test_report_of_the_run_folder(tmp_path, capsys):
    """--report-only over <dir>/{scratch,overfit,seq2seq_overfit} and <dir>/bench.json: rows in
    table order (MLM, then seq2seq), the bounds from the held-out run and both readers' speed."""
    d = tmp_path / "mrc"
    _run(d, "scratch", {"acc": 0.3, "f1": 0.5, "final": 0.4, "evaluated_on": "held-out questions", **BOUNDS})
    _run(d, "overfit", {"acc": 0.95, "evaluated_on": "training questions (overfit check)"}, steps=700)
    _run(d, "seq2seq_overfit", {"acc": 0.92, "cmrc_em": 0.91, "evaluated_on": "training questions (overfit check)"})
    bench = {
        "constrained": {"questions_per_s": 12.0, "final": 0.4, "encoder_calls_per_question": 1.0},
        "seq2seq_greedy": {"questions_per_s": 4.0, "final": 0.39, "encoder_calls_per_question": 6.5},
        "seq2seq_beam": {"questions_per_s": 2.0, "final": 0.41, "encoder_calls_per_question": 6.5, "beam_size": 3},
        "speedup_mlm_vs_seq2seq_greedy": 3.0,
        "speedup_mlm_vs_seq2seq_beam": 6.0,
        "seq2seq_beam_nocache": {
            "questions_per_s": 1.5,
            "final": 0.41,
            "encoder_calls_per_question": 7.5,
            "beam_size": 3,
        },
        "speedup_mlm_vs_seq2seq_beam_nocache": 8.0,
        "seq2seq_joint_nocache": {
            "questions_per_s": 2.4,
            "acc": 0.93,
            "final": 0.42,
            "encoder_calls_per_question": 5.0,
            "beam_size": 1,
        },
        "speedup_mlm_vs_seq2seq_joint_nocache": 5.0,
    }
    (d / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "r" / "t.md"
    assert main(["mrc", "--report-only", "--dir", str(d), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[2].startswith("| MLM, scratch | held-out questions") and rows[3].startswith("| MLM, memorisation")
    assert rows[4].startswith("| seq2seq, memorisation check | training") and "| 0.9100 | - | 0.9200 |" in rows[4]
    assert rows[5].startswith("| trivial baseline") and "| 0.0500 | 0.2500 | 0.1500 |" in rows[5]
    text = out.read_text()
    assert "| MLM constrained (one pass, the post's) | 12.00 | 1.0 | - | 0.4000 |" in text
    assert "| seq2seq per passage beam, key/value cache (beam 3) | 2.00 | 6.5 | - | 0.4100 |" in text
    assert "| seq2seq per passage beam, no cache (beam 3) | 1.50 | 7.5 | - | 0.4100 |" in text
    # the post's decoder is the joint one, uncached; it is named so, and listed first of the seq2seq rows
    joint = "| seq2seq joint, no cache (the post's decoder) (beam 1) | 2.40 | 5.0 | 0.9300 | 0.4200 |"
    assert joint in text and text.index(joint) < text.index("| seq2seq per passage greedy")
    assert "MLM constrained vs seq2seq per passage beam, key/value cache: 6.0x" in text
    assert "MLM constrained vs seq2seq per passage beam, no cache: 8.0x" in text
    assert "MLM constrained vs seq2seq joint, no cache (the post's decoder) (the post's comparison: ~6x): 5.0x" in text
    assert text.count("the post's comparison") == 1
    assert text == capsys.readouterr().out


def test_bad_speed_file_and_missing_run_are_one_error_line(tmp_path, capsys):
    d = tmp_path / "mrc"
    _run(d, "scratch", {"acc": 0.3})
    _run(d, "overfit", {"acc": 0.9})
    (d / "bench.json").write_text("{not json")
    assert main(["mrc", "--report-only", "--dir", str(d)]) == 2
    assert "bench.json" in capsys.readouterr().err
    assert main(["mrc", "--report-only", "--dir", str(tmp_path / "nope")]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_report_without_the_scratch_run_takes_the_bounds_from_a_pretrained_arm(tmp_path):
    """Only the memorisation check is required: the held-out rows (and the baseline / ceiling of
    their questions) come from whichever held-out arm ran, here the seq2seq reader's."""
    d = tmp_path / "mrc"
    _run(d, "overfit", {"acc": 0.93, "evaluated_on": "training questions (overfit check)", **BOUNDS})
    held_out = {"acc": 0.0, "evaluated_on": "held-out questions", "n_questions": 430, **BOUNDS, "baseline_acc": 0.07}
    _run(d, "seq2seq_pretrained", held_out)
    out = tmp_path / "t.md"
    assert main(["mrc", "--report-only", "--dir", str(d), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[2].startswith("| MLM, memorisation check") and rows[3].startswith("| seq2seq, pretrained")
    assert rows[4].startswith("| trivial baseline") and "held-out questions (430 questions)" in rows[4]
    assert "| 0.0700 | 0.2500 | 0.1500 |" in rows[4]
    (d / "overfit" / "metrics.json").unlink()
    assert main(["mrc", "--report-only", "--dir", str(d), "--out", str(out)]) == 2
