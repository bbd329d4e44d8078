"""python -m bertlab.reproduce crf: the layer-1 rows as one real multirun, tabulated (tiny model)."""

import pytest

from bertlab.reproduce.__main__ import main
from bertlab.utils.errors import DataError


@pytest.mark.slow
def test_rows_run_as_one_sweep_and_the_table_is_written(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    tiny = [
        "encoder.hidden_size=32",
        "encoder.num_attention_heads=2",
        "encoder.intermediate_size=64",
        "data.max_train_chars=6000",
        "data.max_eval_sentences=30",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "callbacks.rich_progress_bar=null",
        "threads=1",
    ]
    rc = main(["crf", "--rows", "crf1,crf2,softmax", "--seeds", "42", "--out", str(out), "--", *tiny])
    assert rc == 0
    md = (out / "crf_layer1.md").read_text(encoding="utf-8")
    summary, per_run = md.split("\nPer run:\n")
    # the seed summary (shared seed-sweep table): every row, paired with CRF-1's run of the same seed
    arms = [line.split("|") for line in summary.splitlines() if line.startswith(("| CRF-", "| Softmax"))]
    assert [a[1].strip() for a in arms[:3]] == ["CRF-1", "CRF-2", "Softmax"]
    assert arms[0][7].strip().startswith("+0.0000") and "1 seed: no verdict" in arms[1][7]
    assert 0 < float(arms[0][5]) <= 1  # test F1 after epoch 1 (test_every_epoch=true)
    lines = [line for line in per_run.splitlines() if line.startswith("| CRF-") or line.startswith("| Softmax")]
    assert [line.split("|")[1].strip() for line in lines[:3]] == ["CRF-1", "CRF-2", "Softmax"]
    crf1, crf2, soft = ([c for i, c in enumerate(line.split("|")) if i != 2] for line in lines[:3])  # minus seed
    assert crf1[4].strip() == "0.001" and crf2[4].strip() == "0.01" and soft[4].strip() == "-"
    # 2 epochs x 4 steps: head lr x steps = 0.008 (x1) and 0.08 (x10); the matrix moved, by at most ~lr/step
    assert crf1[10].strip() == "0.008" and crf2[10].strip() == "0.08"
    learned, of, init = crf1[11].replace("(init", "").replace(")", "").split()
    assert of == "best"  # the matrix of the checkpoint whose test F1 is reported
    assert 0 <= int(learned) <= 8 and 0 <= int(init) <= 8 and soft[11].strip() == "-"
    moved1, moved2 = float(crf1[9]), float(crf2[9])
    assert 0 < moved1 <= 0.008 * 1.5 and moved1 < moved2 <= 0.08 * 1.5
    assert "CRF-2 to s" in md and "| impossible moves < 0 |" in md  # side-by-side matrices, BMES check
    # the mechanism across the rows with transitions (post 1): a table and two PNGs next to it
    mech = md.split("Mechanism (post 1)")[1]
    assert [line.split("|")[1].strip() for line in mech.splitlines() if line.startswith("| CRF-")] == ["CRF-1", "CRF-2"]
    assert (out / "mechanism_transition_grad.png").stat().st_size > 0
    assert (out / "mechanism_transitions_add.png").stat().st_size > 0


def _mech_run(root, name, seed, grads, adds, margins=None):
    run = root / f"{name}_{seed}"
    (run / "mechanism").mkdir(parents=True)
    lines = ["step,transition_grad_norm,emission_grad_norm,val_f1,val_f1_emissions_only,transitions_add"]
    lines += [f"{10 * (i + 1)},{g},0.5,0.8,{0.8 - a},{a}" for i, (g, a) in enumerate(zip(grads, adds))]
    if margins is not None:  # a run with the emission margin (top, top - second) per validation
        lines[0] += ",emission_top,emission_margin"
        lines[1:] = [f"{line},{t},{m}" for line, (t, m) in zip(lines[1:], margins)]
    (run / "mechanism" / "mechanism.csv").write_text("\n".join(lines) + "\n")
    return {"row": name, "path": run, "ok": True}


def test_mechanism_report_pairs_each_seeds_first_and_last_validation(tmp_path):
    from bertlab.reporting.crf import mechanism_report

    rows = [
        _mech_run(tmp_path, "CRF x1", 1, [1.0, 0.5, 0.1], [0.0, 0.01, 0.02], [(1, 0.5), (2, 1), (6, 3)]),
        _mech_run(tmp_path, "CRF x1", 2, [2.0, 0.5, 0.2], [0.0, 0.03, 0.04], [(2, 1.5), (2, 1), (8, 4)]),
        _mech_run(tmp_path, "CRF x10", 1, [1.0, 1.0, 1.0], [0.0, 0.1, 0.2]),
        _mech_run(tmp_path, "CRF x10", 2, [1.0, 2.0, 1.0], [0.0, 0.1, 0.2]),
        {"row": "Softmax", "path": tmp_path / "none", "ok": True},  # no mechanism CSV: left out
    ]
    md = mechanism_report(rows, tmp_path / "out")
    lines = {line.split("|")[1].strip(): line.split("|") for line in md.splitlines() if line.startswith("| CRF")}
    assert set(lines) == {"CRF x1", "CRF x10"}
    x1 = [c.strip() for c in lines["CRF x1"]]
    assert x1[2] == "2" and x1[3] == "3 (10, 20, 30)"
    assert x1[4] == "1.5 -> 0.15"  # the seeds' mean per validation
    assert x1[6] == "0.0000 -> 0.0300"
    assert x1[7].startswith("-1.000 ± 0.000") and x1[7].endswith("holds)")  # fell 10x on both seeds
    x10 = [c.strip() for c in lines["CRF x10"]]
    assert x10[7].startswith("+0.000 ± 0.000")
    assert x1[8] == "1.50 / 1.00 -> 7.00 / 3.50" and x10[8] == "-"  # emission top / margin; not measured
    assert (tmp_path / "out" / "mechanism_transition_grad.png").stat().st_size > 0
    assert mechanism_report([rows[-1]], tmp_path / "out2") == ""


def test_pretrained_plan_loads_the_small_bert_and_fresh_stays_as_it_was(capsys):
    """--encoder pretrained: one sweep with encoder=bert_small_pretrained (the experiment keeps its
    first layer); the default (fresh) command does not change."""
    assert main(["crf", "--encoder", "pretrained", "--rows", "crf1", "--out", "x", "--dry-run"]) == 0
    pretrained = capsys.readouterr().out.splitlines()[0]
    assert " experiment=crf_layer1/crf1 encoder=bert_small_pretrained seed=1,2,3 " in pretrained
    assert main(["crf", "--rows", "crf1", "--out", "x", "--dry-run"]) == 0
    fresh = capsys.readouterr().out.splitlines()[0]
    assert "encoder=" not in fresh and fresh == pretrained.replace(" encoder=bert_small_pretrained", "")


def test_the_docs_fresh_table_reads_back_as_its_runs():
    from pathlib import Path

    from bertlab.reporting.crf import read_runs_table
    from bertlab.reproduce.base import ROOT
    from bertlab.reproduce.crf import FRESH

    runs = read_runs_table(ROOT / FRESH)
    assert len(runs) == 15 and all(r["ok"] for r in runs)
    assert {r["row"] for r in runs} == {"CRF-1", "CRF-2", "CRF-3", "Softmax", "MEMM"}
    crf1_seed1 = next(r for r in runs if r["row"] == "CRF-1" and r["seed"] == "1")
    assert crf1_seed1 == {
        "row": "CRF-1",
        "seed": "1",
        "ok": True,
        "val_epoch1": 0.7678,
        "val_best": 0.9021,
        "test_epoch1": 0.7634,
        "test_f1": 0.9016,
    }
    assert Path(FRESH).suffix == ".md"


def test_a_broken_runs_table_names_its_file_and_line(tmp_path):
    from bertlab.reporting.crf import read_runs_table
    from bertlab.utils.errors import DataError

    head = (
        "| job | arm | seed | val F1 epoch 1 | val F1 best | test F1 after epoch 1 | test F1 (best val ckpt) | status |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    bad = tmp_path / "t.md"
    bad.write_text("# t\n\n" + head + "| 0 | CRF-1 | 1 | 0.5 | 0.6 | x | 0.7 | ok |\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.md:5: test F1 after epoch 1: not a number"):
        read_runs_table(bad)
    bad.write_text("no table\n", encoding="utf-8")
    with pytest.raises(DataError, match="no per-run table"):
        read_runs_table(bad)


def _run(row, seed, test_f1, test_epoch1=0.5, ok=True):
    return {
        "row": row,
        "seed": seed,
        "ok": ok,
        "val_epoch1": 0.5,
        "val_best": 0.8,
        "test_epoch1": test_epoch1,
        "test_f1": test_f1,
    }


def test_paired_report_takes_pretrained_minus_fresh_per_seed():
    from bertlab.reporting.crf import paired_report

    fresh = [_run("CRF-1", "1", 0.90), _run("CRF-1", "2", 0.89), _run("CRF-1", "3", 0.90), _run("Softmax", "1", 0.85)]
    pretrained = [
        _run("CRF-1", 1, 0.92004, 0.6),  # printed 0.9200: the difference is of printed values
        _run("CRF-1", 2, 0.9300),
        _run("CRF-1", 3, 0.9100),
        _run("Softmax", 1, 0.86),
        _run("Softmax", 2, 0.86),  # no fresh run of this seed: named, not paired
        _run("MEMM", 1, 0.5, ok=False),  # failed: left out
    ]
    md = paired_report(pretrained, fresh, "docs/x.md")
    cells = {(c[1], c[2]): c for c in ([x.strip() for x in line.split("|")] for line in md.splitlines()) if len(c) > 7}
    crf1 = cells[("CRF-1", "test F1 (best val ckpt)")]
    assert crf1[3] == "1/2/3" and crf1[4] == "0.8967 ± 0.0058" and crf1[5] == "0.9200 ± 0.0100"
    assert crf1[6] == "+0.0200 / +0.0400 / +0.0100"
    # mean 0.0233, std 0.0153, SE 0.0088: 2.6 SE
    assert crf1[7] == "+0.0233 ± 0.0153 (SE 0.0088, n 3: holds)"
    assert cells[("CRF-1", "test F1 after epoch 1")][6] == "+0.1000 / +0.0000 / +0.0000"
    assert "within the seed spread" in cells[("CRF-1", "test F1 after epoch 1")][7]
    soft = cells[("Softmax", "test F1 (best val ckpt)")]
    assert soft[3] == "1" and soft[7] == "+0.0100"  # one seed: the difference, no verdict
    assert not any(k[0] == "MEMM" for k in cells)
    assert "Not paired (no finished fresh run of that row and seed): Softmax seed 2." in md
    assert "`docs/x.md`" in md


@pytest.mark.slow
def test_pretrained_first_layer_sweep_is_paired_with_the_fresh_runs(tmp_path, capsys):
    """--encoder pretrained end to end: layer 1 of data/pretrained/bert_small is loaded (the job log
    says what was kept), and the table pairs the run with the fresh run of that row and seed (here
    a written table); the pretrained sweep given as the fresh one is refused."""
    small = [
        "data.max_train_chars=6000",
        "data.max_eval_sentences=30",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "callbacks.rich_progress_bar=null",
        "threads=1",
    ]
    fresh = tmp_path / "fresh.md"
    fresh.write_text(
        "| job | arm | seed | val F1 epoch 1 | val F1 best | test F1 after epoch 1 | test F1 (best val ckpt) "
        "| status |\n|---|---|---|---|---|---|---|---|\n| 0 | CRF-1 | 7 | 0.1 | 0.2 | 0.3 | 0.25 | ok |\n",
        encoding="utf-8",
    )
    pre = tmp_path / "pre"
    args = ["crf", "--encoder", "pretrained", "--rows", "crf1", "--seeds", "7", "--fresh", str(fresh)]
    assert main([*args, "--out", str(pre), "--", *small]) == 0
    log = (pre / "0" / "cws_crf_layer1.log").read_text(encoding="utf-8")
    assert "1 of 4 layers kept" in log and "0 missing" in log
    md = (pre / "crf_layer1.md").read_text(encoding="utf-8")
    assert md.startswith("# CRF layer-1 table, pretrained first layer")
    assert "wall time" in md.split("\n\n")[1]  # the sweep's wall time, measured by the runner
    row = next(line for line in md.splitlines() if line.startswith("| CRF-1 | test F1 (best val ckpt) | 7 |"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[4] == "0.2500" and cells[6] == f"{float(cells[5]) - 0.25:+.4f}" == cells[7]
    capsys.readouterr()
    assert main([*args[:-1], str(pre), "--report-only", str(pre)]) == 2
    assert "--fresh must be a sweep with a fresh first layer" in capsys.readouterr().err


def _fake_sweep(folder, runs):
    """A finished sweep folder as the table reads it: (row label, head, seed, test F1) per job."""
    import json

    import yaml

    (folder).mkdir(parents=True)
    (folder / "multirun.yaml").write_text("hydra: {overrides: {task: []}}\n", encoding="utf-8")
    for i, (row, head, seed, f1) in enumerate(runs):
        job = folder / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / "csv").mkdir()
        cfg = {
            "row": row,
            "seed": seed,
            "head": {"type": head},
            "optimizer": {"lr": 1e-3, "lr_multipliers": {}},
            "encoder": {"pretrained": "data/pretrained/bert_small"},
        }
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        (job / "metrics.json").write_text(json.dumps({"test": {"f1": f1}, "wall_seconds": 100.0}), encoding="utf-8")
        (job / "csv" / "metrics.csv").write_text(
            f"epoch,step,val/f1,test_epoch/epoch,test_epoch/f1\n0,10,{f1 - 0.1},,\n0,10,,1,{f1 - 0.2}\n",
            encoding="utf-8",
        )


def test_a_folder_of_sweeps_is_one_table_each_row_by_seed(tmp_path, capsys):
    """Rows run as separate sweeps (e.g. a partial sweep, then the remaining rows) tabulate
    together: each row's runs by seed, jobs named by their sweep, paired with the fresh runs."""
    from bertlab.reporting.crf import write_report

    _fake_sweep(tmp_path / "all" / "s1", [("CRF-1", "crf", 1, 0.91), ("CRF-1", "crf", 2, 0.92)])
    _fake_sweep(tmp_path / "all" / "s2", [("Softmax", "softmax", 1, 0.86), ("CRF-1", "crf", 3, 0.90)])
    fresh = tmp_path / "fresh.md"
    fresh.write_text(
        "| job | arm | seed | val F1 epoch 1 | val F1 best | test F1 after epoch 1 | test F1 (best val ckpt) "
        "| status |\n|---|---|---|---|---|---|---|---|\n"
        + "".join(
            f"| {i} | {row} | {seed} | 0.5 | 0.8 | 0.7 | {f1} | ok |\n"
            for i, (row, seed, f1) in enumerate([("CRF-1", 1, 0.90), ("CRF-1", 2, 0.90), ("CRF-1", 3, 0.90)])
        ),
        encoding="utf-8",
    )
    assert write_report(tmp_path / "all", "crf_layer1.md", fresh=fresh) == 0
    md = (tmp_path / "all" / "crf_layer1.md").read_text(encoding="utf-8")
    per_run = [line.split("|")[1:4] for line in md.splitlines() if line.startswith("| s")]
    assert [[c.strip() for c in cells] for cells in per_run] == [
        ["s1/0", "CRF-1", "1"],
        ["s1/1", "CRF-1", "2"],
        ["s2/1", "CRF-1", "3"],
        ["s2/0", "Softmax", "1"],
    ]
    paired = next(line for line in md.splitlines() if line.startswith("| CRF-1 | test F1 (best val ckpt) |"))
    assert "| 1/2/3 |" in paired and "+0.0100 / +0.0200 / +0.0000" in paired
    assert "Softmax seed 1" in md.split("Not paired")[1]  # no fresh Softmax run in the table
    with pytest.raises(DataError, match="the sweep did not start"):
        write_report(tmp_path / "none", "crf_layer1.md")
