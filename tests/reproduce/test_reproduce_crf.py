"""python -m bertlab.reproduce crf: the layer-1 rows as one real multirun, tabulated (tiny model)."""

import pytest

from bertlab.reproduce.__main__ import main


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
