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
