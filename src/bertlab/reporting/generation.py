"""Post 7's results (``python -m bertlab.reproduce generation``): conditional-LayerNorm
generation, rendered from the run folders the reproduction names.

:func:`report_text` takes ``[(label, folder)]``: the arms of the comparison (``scratch``,
``pretrained``, ``unconditional``: metrics, config and samples:
``predictions/test_samples.jsonl``, else ``samples_test.md``) and these:

* ``classifier``: the sentiment classifier: its test accuracy is stated next to the control
  accuracy it judged;
* ``overfit``: the overfit-check run, whose test split IS its 200 training texts: its
  perplexity is labelled "training texts";
* ``overfit_heldout``: a ``bertlab.evaluate`` folder of the overfit model on the held-out test
  split (the perplexity the training one must fall well below);
* ``bench``: the JSON of ``scripts/bench_generate.py`` (cached vs uncached tokens/s).

Sections: one row per arm (perplexity overall and per label on the held-out test split, control
accuracy, distinct-1/2, copy rate, samples, budget); the overfit check; the generation speed;
``per_label`` samples per label of every arm. A model without the condition
(``model.conditional=false``) is marked: its control accuracy is the base rate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bertlab.reporting.run_folder import read_run
from bertlab.reporting.tables import esc as _esc
from bertlab.reporting.tables import num as _num
from bertlab.reporting.tables import write_table
from bertlab.utils.errors import DataError

SPECIAL = ("classifier", "overfit", "overfit_heldout", "bench")


# ---------------------------------------------------------------------------------------- reading
def _md_cells(line: str) -> list[str]:
    """Cells of one markdown table row, ``\\|`` kept as ``|`` inside a cell."""
    cells, cur, i, body = [], "", 0, line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] == "|":
            cur += "|"
            i += 2
            continue
        if body[i] == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += body[i]
        i += 1
    cells.append(cur.strip())
    return cells


def load_samples(run_dir: str) -> list[dict[str, Any]]:
    """The test samples of a run: ``[{"label_name", "text"}]`` from
    ``predictions/test_samples.jsonl``, else from the ``samples_test.md`` table; [] if neither."""
    jsonl = os.path.join(run_dir, "predictions", "test_samples.jsonl")
    if os.path.isfile(jsonl):
        out = []
        with open(jsonl, encoding="utf-8") as f:
            for num, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    out.append({"label_name": str(rec["label_name"]), "text": str(rec["text"])})
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise DataError(jsonl, num, f"not a sample record ({type(err).__name__}: {err})") from None
        return out
    md = os.path.join(run_dir, "samples_test.md")
    if not os.path.isfile(md):
        return []
    out = []
    with open(md, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("| ") or line.startswith("| label |"):
                continue
            cells = _md_cells(line)
            if len(cells) == 3:
                out.append({"label_name": cells[0], "text": cells[2]})
    return out


# ---------------------------------------------------------------------------------------- formatting
def label_names(metrics: dict[str, Any]) -> list[str]:
    """Label names in the order the run reported them (``ppl_<name>`` keys)."""
    return [k[4:] for k in metrics.get("test", {}) if k.startswith("ppl_")]


def _arm_desc(cfg: dict[str, Any]) -> str:
    enc = cfg.get("encoder", {}) or {}
    model = cfg.get("model", {}) or {}
    parts = []
    if enc:
        layers = enc.get("num_layers")
        if enc.get("pretrained"):  # a loaded model keeps its own width; keep_layers = its first K layers
            # (a run from before keep_layers existed: num_layers cut loaded models too)
            layers = enc.get("keep_layers") if "keep_layers" in enc else layers
            name = os.path.basename(str(enc["pretrained"]).rstrip("/"))
            parts.append(f"pretrained {name}, {'first ' + str(layers) if layers is not None else 'all'} layers")
        else:
            parts.append(f"scratch, {layers} layers x {enc.get('hidden_size', '?')}")
    if model:
        parts.append("conditional LN" if model.get("conditional", True) else "NO condition (base rate)")
    return "; ".join(parts) or "-"


def _budget(m: dict[str, Any], cfg: dict[str, Any]) -> str:
    wall = m.get("wall_seconds")
    trainer = cfg.get("trainer", {}) or {}
    epochs = trainer.get("max_epochs")
    s = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "-"
    if epochs is not None:
        s += f", max {epochs} epochs"
    return s


Arm = tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]  # label, metrics, config, samples


def arms_table(arms: list[Arm], classifier: dict[str, Any] | None) -> str:
    names: list[str] = []
    for _, m, _, _ in arms:
        names += [n for n in label_names(m) if n not in names]
    cls_acc = (classifier or {}).get("test", {}).get("acc")
    acc_head = f"control acc (classifier test acc {_num(cls_acc)})" if cls_acc is not None else "control acc"
    copy_chars = next(
        (
            str((c.get("model", {}) or {}).get("generation", {}).get("copy_min_chars"))
            for _, _, c, _ in arms
            if (c.get("model", {}) or {}).get("generation", {}).get("copy_min_chars")
        ),
        "20",
    )
    head = (
        ["arm", "model", "ppl (test)"]
        + [f"ppl {n}" for n in names]
        + [acc_head, "distinct-1", "distinct-2", f"copy rate ({copy_chars}+ chars)", "samples", "budget"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, m, cfg, samples in arms:
        t = m.get("test", {})
        n_samples = len(samples)
        row = (
            [label, _arm_desc(cfg), _num(t.get("ppl"), 2)]
            + [_num(t.get(f"ppl_{n}"), 2) for n in names]
            + [
                _num(t.get("control_acc")),
                _num(t.get("distinct_1")),
                _num(t.get("distinct_2")),
                _num(t.get("copy_rate")),
                str(n_samples) if n_samples else "-",
                _budget(m, cfg),
            ]
        )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def overfit_table(
    overfit: dict[str, Any], heldout: dict[str, Any] | None, reference: tuple[str, dict[str, Any]] | None
) -> str:
    names = label_names(overfit)
    head = ["model", "evaluated on", "texts (chunks, tokens)", "ppl"] + [f"ppl {n}" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(model: str, on: str, m: dict[str, Any], split_stats: str = "test") -> str:
        t, st = m.get("test", {}), m.get("data_stats", {}) or {}
        size = (
            f"{st.get(f'{split_stats}_texts', '-')} ({st.get(f'{split_stats}_chunks', '-')}, "
            f"{st.get(f'{split_stats}_tokens', t.get('n_tokens', '-'))})"
        )
        cells = [model, on, size, _num(t.get("ppl"), 2)] + [_num(t.get(f"ppl_{n}"), 2) for n in names]
        return "| " + " | ".join(cells) + " |"

    lines.append(row("overfit", "**training texts** (the 200 it was trained on; overfit check)", overfit))
    if heldout is not None:
        lines.append(row("overfit", "held-out test split", heldout))
    if reference is not None:
        lines.append(row(reference[0], "held-out test split (for reference)", reference[1]))
    return "\n".join(lines) + "\n"


def bench_lines(bench: dict[str, Any]) -> str:
    c, u = bench.get("cached", {}), bench.get("uncached", {})
    return (
        f"| model | rows x tokens | cached tokens/s | uncached tokens/s | ratio | greedy tokens identical |\n"
        f"|---|---|---|---|---|---|\n"
        f"| {_esc(bench.get('model', '-'))} ({bench.get('layers', '?')} layers x {bench.get('hidden', '?')}, "
        f"vocab {bench.get('vocab', '?')}, {bench.get('threads', '?')} threads, {bench.get('device', 'cpu')}) "
        f"| {bench.get('rows', '-')} x {bench.get('max_len', '-')} | {_num(c.get('tokens_per_s'), 1)} "
        f"| {_num(u.get('tokens_per_s'), 1)} | {_num(bench.get('ratio_cached_over_uncached'), 2)}x "
        f"| {bench.get('greedy_identical', '-')} |\n"
    )


def samples_section(label: str, samples: list[dict[str, Any]], per_label: int, names: list[str]) -> str:
    lines = [f"### samples: {label}", "", "| label | # | text |", "|---|---|---|"]
    order = names + sorted({s["label_name"] for s in samples} - set(names))
    for name in order:
        for i, s in enumerate([s for s in samples if s["label_name"] == name][:per_label], 1):
            lines.append(f"| {_esc(name)} | {i} | {_esc(s['text'])} |")
    if len(lines) == 4:
        lines.append("| - | - | (no samples written) |")
    return "\n".join(lines) + "\n"


def report_text(runs: list[tuple[str, str]], per_label: int = 5) -> str:
    """The whole markdown report of ``[(label, path)]`` (see the module doc)."""
    arms: list[Arm] = []
    special: dict[str, Any] = {}
    for label, path in runs:
        if label == "bench":
            if not os.path.isfile(path):
                raise DataError(path, None, "no such benchmark file (scripts/bench_generate.py --json)")
            with open(path, encoding="utf-8") as f:
                try:
                    special["bench"] = json.load(f)
                except json.JSONDecodeError as err:
                    raise DataError(path, err.lineno, f"not JSON ({err.msg})") from None
        elif label in SPECIAL:
            special[label] = read_run(path).finished_metrics()
            special[f"{label}_dir"] = path
        else:
            run = read_run(path)
            arms.append((label, run.finished_metrics(), run.config, load_samples(path)))
    out = ["# Conditional LayerNorm generation (post 7): results", ""]
    classifier = special.get("classifier")
    if arms:
        out += [
            "Held-out test split: perplexity per label; generated samples (the run's "
            "`model.generation`) scored by control accuracy (share judged to have the label they were "
            "generated for by the independent sentiment classifier), distinct-1/2 and the share copying a "
            "training substring.",
            "",
        ]
        if classifier is not None:
            t = classifier.get("test", {})
            out += [
                f"Classifier: `{special['classifier_dir']}`, test accuracy {_num(t.get('acc'))} "
                f"on {t.get('n_examples', '-')} test texts.",
                "",
            ]
        else:
            out += ["No classifier run given: its own test accuracy is not stated.", ""]
        out.append(arms_table(arms, classifier))
        base = [lab for lab, _, cfg, _ in arms if (cfg.get("model", {}) or {}).get("conditional", True) is False]
        if base:
            out += [
                f"The base rate to beat is the control accuracy of {', '.join(base)} (trained without the condition).",
                "",
            ]
    if "overfit" in special:
        reference = next(
            ((lab, m) for lab, m, _, _ in arms if lab == "scratch"), (arms[0][0], arms[0][1]) if arms else None
        )
        out += ["## Overfit check", "", overfit_table(special["overfit"], special.get("overfit_heldout"), reference)]
    if "bench" in special:
        out += ["## Generation speed (scripts/bench_generate.py)", "", bench_lines(special["bench"])]
    if arms and per_label > 0:
        out += [f"## Samples ({per_label} per label)", ""]
        for label, m, _, samples in arms:
            out.append(samples_section(label, samples, per_label, label_names(m)))
    return "\n".join(out).rstrip("\n") + "\n"


def write(runs: list[tuple[str, str]], per_label: int, out: Path) -> int:
    """:func:`report_text` into ``out`` (atomically: a half-written report never replaces a
    finished one), and printed."""
    text = report_text(runs, per_label)
    write_table(out, text)
    sys.stdout.write(text)
    return 0
