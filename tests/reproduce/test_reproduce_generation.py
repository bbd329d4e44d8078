"""python -m bertlab.reproduce generation: the results report, from FABRICATED run folders
(fixtures: every number below is made up; this tests the formatting only)."""

import json

from bertlab.reporting.generation import _md_cells
from bertlab.reproduce.__main__ import main
from bertlab.tasks.conditional_generation import samples_markdown

NAMES = ["negative", "positive"]


def _run(tmp_path, name, test, *, conditional=True, pretrained=None, data_stats=None, samples=None, md=False):
    d = tmp_path / name
    (d / ".hydra").mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"test": test, "wall_seconds": 600.0, "data_stats": data_stats or {}}))
    (d / ".hydra" / "config.yaml").write_text(
        f"encoder:\n  pretrained: {pretrained or 'null'}\n  num_layers: 2\n  hidden_size: 256\n"
        f"model:\n  conditional: {str(conditional).lower()}\n  generation:\n    copy_min_chars: 20\n"
        "trainer:\n  max_epochs: 3\n"
    )
    if samples is not None:
        if md:  # only the markdown file (as written during test)
            (d / "samples_test.md").write_text(samples_markdown(samples, "test samples"), encoding="utf-8")
        else:
            (d / "predictions").mkdir()
            (d / "predictions" / "test_samples.jsonl").write_text(
                "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8"
            )
    return d


def _samples(tag, n=6):
    return [
        {"label": lab, "label_name": NAMES[lab], "text": f"{tag}-{NAMES[lab]}-{i}" + ("a|b" if i == 0 else "")}
        for lab in (0, 1)
        for i in range(n)
    ]


GEN = {
    "ppl": 30.123,
    "ppl_negative": 31.0,
    "ppl_positive": 29.5,
    "control_acc": 0.87,
    "distinct_1": 0.1234,
    "distinct_2": 0.5678,
    "copy_rate": 0.02,
    "n_tokens": 1000,
}


def test_full_report_sections_and_rows(tmp_path, capsys):
    scratch = _run(tmp_path, "scratch", GEN, samples=_samples("s"))
    pre = _run(
        tmp_path, "pretrained", {**GEN, "ppl": 20.0}, pretrained="/x/data/pretrained/bert_small", samples=_samples("p")
    )
    unc = _run(
        tmp_path, "unconditional", {**GEN, "control_acc": 0.5}, conditional=False, samples=_samples("u", 3), md=True
    )
    over = _run(
        tmp_path,
        "overfit",
        {"ppl": 3.5, "ppl_negative": 3.4, "ppl_positive": 3.6, "n_tokens": 900},
        data_stats={"test_texts": 200, "test_chunks": 260, "test_tokens": 9000},
    )
    held = _run(
        tmp_path,
        "overfit_heldout",
        {"ppl": 95.0, "ppl_negative": 90.0, "ppl_positive": 100.0},
        data_stats={"test_texts": 2111, "test_chunks": 3000, "test_tokens": 150000},
    )
    cls = tmp_path / "cls"
    cls.mkdir()
    (cls / "metrics.json").write_text(json.dumps({"test": {"acc": 0.9012, "n_examples": 2111}}))
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "model": "fresh small",
                "layers": 2,
                "hidden": 256,
                "vocab": 7437,
                "threads": 2,
                "device": "cpu",
                "rows": 16,
                "max_len": 126,
                "cached": {"tokens_per_s": 4000.0},
                "uncached": {"tokens_per_s": 400.0},
                "ratio_cached_over_uncached": 10.0,
                "greedy_identical": True,
            }
        )
    )
    out = tmp_path / "res" / "results.md"
    # the run folders of one --dir: scratch, pretrained, unconditional, overfit, overfit_heldout, bench.json
    assert {p.parent for p in (scratch, pre, unc, over, held, bench)} == {tmp_path}
    rc = main(["generation", "--report-only", "--dir", str(tmp_path), "--cls-dir", str(cls), "--out", str(out)])
    assert rc == 0
    text = out.read_text(encoding="utf-8")
    assert text == capsys.readouterr().out
    lines = text.splitlines()
    head = next(line for line in lines if line.startswith("| arm |"))
    assert head == (
        "| arm | model | ppl (test) | ppl negative | ppl positive | control acc (classifier test acc 0.9012) "
        "| distinct-1 | distinct-2 | copy rate (20+ chars) | samples | budget |"
    )
    h = lines.index(head)
    table = lines[h + 2 : lines.index("", h)]
    rows = {line.split(" | ")[0][2:]: line for line in table}
    assert list(rows) == ["scratch", "pretrained", "unconditional"]
    assert rows["scratch"] == (
        "| scratch | scratch, 2 layers x 256; conditional LN | 30.12 | 31.00 | 29.50 | 0.8700 "
        "| 0.1234 | 0.5678 | 0.0200 | 12 | 10.0 min, max 3 epochs |"
    )
    assert rows["pretrained"].startswith(
        "| pretrained | pretrained bert_small, first 2 layers; conditional LN | 20.00 |"
    )
    assert "NO condition (base rate)" in rows["unconditional"] and "| 0.5000 |" in rows["unconditional"]
    assert "| 6 |" in rows["unconditional"]  # samples read back from samples_test.md
    assert "test accuracy 0.9012 on 2111 test texts" in text
    assert "base rate to beat is the control accuracy of unconditional" in text
    # overfit check: training texts labelled as such, then held-out, then the scratch reference
    i = lines.index("## Overfit check")
    assert lines[i + 2] == "| model | evaluated on | texts (chunks, tokens) | ppl | ppl negative | ppl positive |"
    assert lines[i + 4] == (
        "| overfit | **training texts** (the 200 it was trained on; overfit check) "
        "| 200 (260, 9000) | 3.50 | 3.40 | 3.60 |"
    )
    assert lines[i + 5] == "| overfit | held-out test split | 2111 (3000, 150000) | 95.00 | 90.00 | 100.00 |"
    assert lines[i + 6].startswith("| scratch | held-out test split (for reference) |")
    assert "| 4000.0 | 400.0 | 10.00x | True |" in text
    # five samples per label per arm, pipes escaped, labels in the run's order
    j = lines.index("### samples: scratch")
    block = lines[j + 4 : j + 14]
    assert block[0] == "| negative | 1 | s-negative-0a\\|b |" and block[4] == "| negative | 5 | s-negative-4 |"
    assert block[5] == "| positive | 1 | s-positive-0a\\|b |" and len(block) == 10
    k = lines.index("### samples: unconditional")
    assert (
        lines[k + 4] == "| negative | 1 | u-negative-0a\\|b |"
        and lines[k + 7] == "| positive | 1 | u-positive-0a\\|b |"
    )


def test_partial_report_and_missing_pieces(tmp_path, capsys):
    _run(tmp_path, "scratch", {"ppl": 40.0, "ppl_negative": 41.0, "ppl_positive": 39.0})
    assert main(["generation", "--report-only", "--dir", str(tmp_path), "--samples", "2"]) == 0
    text = capsys.readouterr().out
    assert "No classifier run given" in text and "| control acc |" in text
    assert "| scratch | scratch, 2 layers x 256; conditional LN | 40.00 | 41.00 | 39.00 | - | - | - | - | - |" in text
    assert "(no samples written)" in text and "## Overfit check" not in text
    # a run folder without metrics.json (unfinished run) and a broken bench file: one error line
    (tmp_path / "empty" / "scratch").mkdir(parents=True)
    assert main(["generation", "--report-only", "--dir", str(tmp_path / "empty")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
    (tmp_path / "bench.json").write_text("{not json")
    assert main(["generation", "--report-only", "--dir", str(tmp_path)]) == 2
    assert "bench.json" in capsys.readouterr().err


def test_markdown_cells_keep_escaped_pipes():
    assert _md_cells("| positive | 2 | a\\|b c |") == ["positive", "2", "a|b c"]
