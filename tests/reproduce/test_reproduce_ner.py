"""python -m bertlab.reproduce ner: the table of a FABRICATED Resume NER sweep (made-up
numbers; this tests the arms, per-type columns, paired deltas and impossible-move counts)."""

import json
from pathlib import Path

from bertlab.reproduce.__main__ import main
from bertlab.reproduce.ner import TYPES

TAGS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BMES"]


def _job(sweep: Path, num: int, head: str, mult, seed: int, f1: float, negative_end: bool) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    mults = "{}" if mult is None else f"{{{head}: {mult}}}"
    (job / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\nhead:\n  type: {head}\noptimizer:\n  lr: 0.001\n  lr_multipliers: {mults}\n"
    )
    (job / "csv").mkdir()
    (job / "csv" / "metrics.csv").write_text(f"epoch,step,val/f1\n0,10,{f1 - 0.1}\n1,20,{f1}\n")
    test = {"precision": f1 + 0.01, "recall": f1 - 0.01, "f1": f1, "per_type": {"NAME": {"f1": 0.9}}}
    (job / "metrics.json").write_text(json.dumps({"test": test}))
    if head != "softmax":
        (job / "transitions").mkdir()
        for step, val in ((0, 0.5), (20, -0.5 if negative_end else 0.5)):
            rows = ["from\\to," + ",".join(TAGS)] + [f"{a}," + ",".join([str(val)] * len(TAGS)) for a in TAGS]
            (job / "transitions" / f"step{step:07d}.csv").write_text("\n".join(rows) + "\n")


def test_arms_rows_deltas_and_impossible_moves(tmp_path, capsys):
    root = tmp_path / "ner"
    specs = [("crf", 1, 0.60, False), ("crf", 10, 0.70, True), ("crf", 100, 0.72, True), ("softmax", None, 0.5, False)]
    specs.append(("memm", 10, 0.65, True))
    for i, (head, mult, f1, neg) in enumerate(specs):
        sweep = root / str(i)
        sweep.mkdir(parents=True)
        (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n")
        for seed in (1, 2):
            _job(sweep, seed - 1, head, mult, seed, f1 + 0.01 * seed, neg)
    out = tmp_path / "ner.md"
    assert main(["ner", "--multirun", str(root), "--out", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    arms = [line.split("|")[1].strip() for line in md.split("Per run")[0].splitlines() if line.startswith("| ")]
    assert arms[1:] == ["CRF x1", "CRF x10", "CRF x100", "Softmax", "MEMM x10"]
    head = next(line for line in md.splitlines() if line.startswith("| arm |"))
    assert "test F1 NAME (%)" in head and "test F1 RACE (%)" in head
    crf10 = next(line for line in md.splitlines() if line.startswith("| CRF x10 |"))
    cells = [c.strip() for c in crf10.split("|")[1:-1]]
    # runs, val F1 epoch 1, best, P, R, F1, delta vs CRF x1 (+10 pp on both seeds), NAME, ... RACE
    assert (
        cells[1] == "2"
        and cells[3] == "71.50 ± 0.71"
        and cells[6] == "71.50 ± 0.71"
        and cells[7] == "+10.00 ± 0.00 (SE 0.00, n 2: holds)"
    )
    assert cells[8] == "90.00 ± 0.00" and cells[9] == "-"  # ORG never reported
    assert cells[-3:] == ["1.000 ± 0.000", "100.0 ± 0.0", "0.0 ± 0.0"]
    crf1 = next(line for line in md.splitlines() if line.startswith("| CRF x1 |"))
    assert crf1.split("|")[-2].strip() == "0.0 ± 0.0"  # init matrix all positive
    soft = next(line for line in md.splitlines() if line.startswith("| Softmax |"))
    assert soft.rstrip(" |").endswith("| - | - | -")


def test_peoples_daily_table_has_its_types_and_bio_impossible_moves(tmp_path):
    from bertlab.reproduce.ner_pd import TYPES as PD_TYPES

    sweep = tmp_path / "pd" / "0"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n")
    _job(sweep, 0, "crf", 1, 1, 0.8, True)
    tags = ["O"] + [f"{p}-{t}" for t in PD_TYPES for p in "BI"]
    for step in (0, 20):  # BIO matrices: O->I-x and B-x->I-y are the impossible moves
        val = 0.5 if step == 0 else -0.5
        rows = ["from\\to," + ",".join(tags)] + [f"{a}," + ",".join([str(val)] * len(tags)) for a in tags]
        (sweep / "0" / "transitions" / f"step{step:07d}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "pd.md"
    assert main(["ner_pd", "--multirun", str(tmp_path / "pd"), "--out", str(out)]) == 1  # other arms missing
    md = out.read_text(encoding="utf-8")
    head = next(line for line in md.splitlines() if line.startswith("| arm |"))
    assert "test F1 PER (%)" in head and "test F1 NAME (%)" not in head
    crf1 = [c.strip() for c in next(x for x in md.splitlines() if x.startswith("| CRF x1 |")).split("|")[1:-1]]
    assert crf1[-3:] == ["1.000", "100.0", "0.0"] and "People's Daily" in md
