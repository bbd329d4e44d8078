"""reporting/tables.py: the transition matrices, the impossible tag moves and number formatting."""

import pytest

from bertlab.reporting.tables import (
    count_negative,
    esc,
    impossible_moves,
    num,
    read_matrix,
    reported_transitions,
    transition_files,
)


def test_cws_impossible_moves_are_the_eight_of_the_crf_table():
    assert impossible_moves(["s", "b", "m", "e"]) == [
        ("s", "m"),
        ("s", "e"),
        ("b", "s"),
        ("b", "b"),
        ("m", "s"),
        ("m", "b"),
        ("e", "m"),
        ("e", "e"),
    ]


def test_ner_bmes_and_bio_impossible_moves():
    bmes = ["O", "B-A", "M-A", "E-A", "S-A", "B-C", "M-C", "E-C", "S-C"]
    moves = set(impossible_moves(bmes))
    # inside A (after B-A / M-A) only M-A or E-A; M / E only after B or M of the same type
    assert ("B-A", "M-A") not in moves and ("M-A", "E-A") not in moves and ("E-A", "B-C") not in moves
    assert {("B-A", "O"), ("M-A", "S-A"), ("B-A", "M-C"), ("O", "E-A"), ("S-A", "M-A"), ("E-C", "E-C")} <= moves
    # from B/M of a type (4 rows): 9 - 2 allowed = 7 each; from O/E/S (5 rows): the 4 M/E tags each
    assert len(moves) == 4 * 7 + 5 * 4
    bio = ["O", "B-A", "I-A", "B-C", "I-C"]
    assert impossible_moves(bio) == [
        ("O", "I-A"),
        ("O", "I-C"),
        ("B-A", "I-C"),
        ("I-A", "I-C"),
        ("B-C", "I-A"),
        ("I-C", "I-A"),
    ]
    with pytest.raises(ValueError, match="X-A"):
        impossible_moves(["O", "X-A"])


def test_count_negative_and_matrices_in_step_order(tmp_path):
    (tmp_path / "transitions").mkdir()
    for step, val in ((10, -1.0), (0, 1.0)):
        rows = ["from\\to,s,b,m,e"] + [f"{n},{val},{val},{val},{val}" for n in "sbme"]
        (tmp_path / "transitions" / f"step{step:07d}.csv").write_text("\n".join(rows) + "\n")
    files = transition_files(tmp_path)
    assert [f.name for f in files] == ["step0000000.csv", "step0000010.csv"]
    names, init = read_matrix(files[0])
    _, last = read_matrix(files[1])
    moves = impossible_moves(names)
    assert names == ["s", "b", "m", "e"] and count_negative(names, init, moves) == 0
    assert count_negative(names, last, moves) == 8


def test_reported_transitions_are_the_best_checkpoints_else_the_last_labelled(tmp_path):
    assert reported_transitions(tmp_path) is None
    (tmp_path / "transitions").mkdir()
    for step in (0, 10, 20):
        (tmp_path / "transitions" / f"step{step:07d}.csv").write_text("from\\to,s\ns,0\n")
    path, label = reported_transitions(tmp_path)
    assert (path.name, label) == ("step0000020.csv", "last")  # a run older than best.csv
    (tmp_path / "transitions" / "best.csv").write_text("from\\to,s\ns,1\n")
    path, label = reported_transitions(tmp_path)
    assert (path.name, label) == ("best.csv", "best")


def test_number_formatting():
    assert num(1 / 3) == "0.3333" and num(2, 1) == "2.0" and num(None) == "-"
    assert num(float("nan")) == "-" and num(True) == "-" and num("x") == "-"
    assert esc("a|b\nc") == "a\\|b c"
