"""Small FABRICATED run folders (every number is made up) for every table bertlab renders, and the
command that renders each: ``tests/reporting/test_golden_tables.py`` compares the rendered
markdown with ``tests/reporting/golden/<name>.md``, written by the renderers of before the
reproduce/ - reporting/ split (issue 30 §3), so a table stays byte-identical.

The folders mimic what ``python -m bertlab.train`` leaves: ``.hydra/config.yaml`` (as Hydra
writes it: floats with a dot, interpolations kept), ``.hydra/overrides.yaml``,
``csv/metrics.csv``, ``metrics.json`` when the run finished (``status.json`` with the reason
when it did not), ``transitions/*.csv`` and ``mechanism/mechanism.csv`` for the CRF post.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

BMES = ["s", "b", "m", "e"]
NER_TYPES = ("NAME", "ORG", "TITLE", "EDU", "PRO", "CONT", "LOC", "RACE")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in r) for r in rows]
    _write(path, "\n".join(lines) + "\n")


def _matrix(path: Path, names: list[str], values: list[list[float]]) -> None:
    rows = ["from\\to," + ",".join(names)] + [f"{a}," + ",".join(str(v) for v in r) for a, r in zip(names, values)]
    _write(path, "\n".join(rows) + "\n")


def _job(
    sweep: Path,
    num: int,
    config: str,
    overrides: list[str],
    header: list[str],
    history: list[list[Any]],
    metrics: dict[str, Any] | None,
    error: str | None = None,
) -> Path:
    job = sweep / str(num)
    _write(job / ".hydra" / "config.yaml", config)
    _write(job / ".hydra" / "overrides.yaml", "".join(f"- {o}\n" for o in overrides))
    _csv(job / "csv" / "metrics.csv", header, history)
    if metrics is not None:
        _write(job / "metrics.json", json.dumps(metrics))
    else:
        _write(job / "status.json", json.dumps({"status": "failed", "error": error or "killed"}))
    return job


def _multirun(sweep: Path, task: list[str]) -> Path:
    _write(sweep / "multirun.yaml", "hydra:\n  overrides:\n    task:\n" + "".join(f"    - {t}\n" for t in task))
    return sweep


# ---------------------------------------------------------------------------------------- CRF post
CRF_HEADER = ["epoch", "step", "train/loss", "val/f1", "test_epoch/f1", "test_epoch/epoch"]


def _crf_job(
    sweep: Path,
    num: int,
    *,
    row: str | None,
    head: str,
    mult: float | None,
    seed: int,
    f1s: list[float],
    tests: list[float] | None,
    test_f1: float | None,
    moves: float,
    best_csv: bool = True,
    mechanism: list[tuple] | None = None,
    lr: float = 0.001,
) -> None:
    mults = "    {}\n" if mult is None else f"    {head}: {mult}\n"
    config = (
        f"row: {row}\n" if row else ""
    ) + f"seed: {seed}\nhead:\n  type: {head}\noptimizer:\n  lr: {lr}\n  lr_multipliers:\n{mults}"
    history = []
    for e, f in enumerate(f1s):
        history.append([e, 10 * e + 5, round(1.0 / (e + 1), 4), None, None, None])
        history.append([e, 10 * e + 9, None, f, None, None])
        if tests is not None and e < len(tests):
            history.append([e, 10 * e + 9, None, None, tests[e], e + 1])
    metrics = None if test_f1 is None else {"test": {"f1": test_f1, "precision": test_f1}, "wall_seconds": 61.7 + num}
    job = _job(
        sweep,
        num,
        config,
        [f"experiment=crf_layer1/{head}", f"seed={seed}"],
        CRF_HEADER,
        history,
        metrics,
        "CUDA out of memory",
    )
    if head in ("crf", "memm"):
        init = [[0.01 * (i - j) for j in range(4)] for i in range(4)]
        last = [[round(v - moves * ((i + j) % 3 - 1), 4) for j, v in enumerate(r)] for i, r in enumerate(init)]
        _matrix(job / "transitions" / "step0000000.csv", BMES, init)
        _matrix(job / "transitions" / "step0000019.csv", BMES, last)
        if best_csv:
            _matrix(job / "transitions" / "best.csv", BMES, [[v / 2 for v in r] for r in last])
    if mechanism:
        cols = ["step", "transition_grad_norm", "emission_grad_norm", "val_f1", "val_f1_emissions_only"]
        cols += ["transitions_add", *(["emission_top", "emission_margin"] if len(mechanism[0]) > 4 else [])]
        rows = [[s, g, eg, 0.8, round(0.8 - a, 4), a, *rest] for s, g, eg, a, *rest in mechanism]
        _csv(job / "mechanism" / "mechanism.csv", cols, rows)


def crf_layer1(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=crf_layer1/crf1,crf_layer1/crf2,crf_layer1/softmax", "seed=1,2"])
    mech1 = [(10, 1.0, 0.5, 0.0, 6.0, 3.0), (20, 0.5, 0.4, 0.01, 7.0, 3.5), (30, 0.1, 0.3, 0.02, 8.0, 4.0)]
    mech2 = [(10, 2.0, 0.6, 0.0), (20, 0.7, 0.5, 0.03), (30, 0.2, 0.2, 0.04)]
    n = 0
    for seed in (1, 2):
        _crf_job(
            sweep,
            n,
            row="CRF-1",
            head="crf",
            mult=1,
            seed=seed,
            f1s=[0.61 + seed / 100, 0.7, 0.69],
            tests=[0.6, 0.68, 0.67],
            test_f1=0.68 + seed / 200,
            moves=0.004,
            mechanism=mech1 if seed == 1 else mech2,
        )
        _crf_job(
            sweep,
            n + 1,
            row="CRF-2",
            head="crf",
            mult=10,
            seed=seed,
            f1s=[0.71, 0.75 + seed / 100],
            tests=[0.7, 0.74],
            test_f1=0.74 + seed / 300,
            moves=0.04,
            best_csv=seed == 1,
            mechanism=[(10, 3.0, 0.5, 0.01), (20, 1.0, 0.4, 0.05)],
        )
        _crf_job(
            sweep,
            n + 2,
            row="Softmax",
            head="softmax",
            mult=None,
            seed=seed,
            f1s=[0.55, 0.6],
            tests=[0.5, 0.58],
            test_f1=None if seed == 2 else 0.59,
            moves=0,
        )
        n += 3
    _crf_job(
        sweep,
        n,
        row="MEMM",
        head="memm",
        mult=10,
        seed=1,
        f1s=[0.4, 0.5],
        tests=None,
        test_f1=0.49,
        moves=0.02,
        mechanism=[(10, 0.3, 0.2, 0.0), (20, 0.2, 0.1, 0.0)],
    )
    _crf_job(
        sweep,
        n + 1,
        row="CRF-3",
        head="crf",
        mult=10,
        seed=1,
        f1s=[0.3, 0.4],
        tests=[0.25],
        test_f1=0.38,
        moves=0.5,
        lr=0.01,
    )
    return sweep


def crf_claim(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=crf_lr_claim", "optimizer.lr_multipliers.crf=1,100", "seed=1,2"])
    n = 0
    for mult in (1, 100):
        for seed in (1, 2):
            _crf_job(
                sweep,
                n,
                row="CRF x${optimizer.lr_multipliers.crf}",
                head="crf",
                mult=mult,
                seed=seed,
                f1s=[0.8 + mult / 1000, 0.85 + seed / 100],
                tests=[0.79, 0.84],
                test_f1=0.84 + mult / 10000,
                moves=0.001 * mult,
                lr=1.0e-05,
                best_csv=mult == 100,
            )
            n += 1
    return sweep


def crf_mechanism(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=crf_layer1/crf1", "++optimizer.lr_multipliers.crf=1,10,100", "seed=1"])
    for n, mult in enumerate((1, 10, 100)):
        mech = [(10 * (i + 1), 1.0 / (mult * (i + 1)), 0.5, 0.01 * i * mult / 10) for i in range(4)]
        _crf_job(
            sweep,
            n,
            row="CRF-1",
            head="crf",
            mult=mult,
            seed=1,
            f1s=[0.6, 0.65 + mult / 1000],
            tests=None,
            test_f1=0.64 + mult / 1000,
            moves=0.001 * mult,
            mechanism=mech,
        )
    return sweep


# ---------------------------------------------------------------------------------------- NER
def _ner_job(sweep: Path, num: int, head: str, mult, seed: int, f1: float, types: tuple[str, ...], bio: bool) -> None:
    mults = "    {}\n" if mult is None else f"    {head}: {mult}\n"
    config = f"seed: {seed}\nhead:\n  type: {head}\noptimizer:\n  lr: 0.001\n  lr_multipliers:\n{mults}"
    per_type = {t: {"f1": round(f1 - 0.01 * i, 4)} for i, t in enumerate(types[:3])}
    test = {"precision": f1 + 0.01, "recall": f1 - 0.01, "f1": f1, "per_type": per_type}
    job = _job(
        sweep,
        num,
        config,
        [f"head={head}", f"seed={seed}"],
        ["epoch", "step", "val/f1"],
        [[0, 10, round(f1 - 0.1, 4)], [1, 20, f1]],
        {"test": test},
    )
    if head != "softmax":
        tags = ["O"] + [f"{p}-{t}" for t in types for p in ("BI" if bio else "BMES")]
        for step, sign in ((0, 1), (20, -1)):
            vals = [
                [round(sign * 0.1 * ((i * 7 + j * 3) % 5 - 1), 3) for j in range(len(tags))] for i in range(len(tags))
            ]
            _matrix(job / "transitions" / f"step{step:07d}.csv", tags, vals)


def ner(root: Path) -> Path:
    specs = [("crf", 1, 0.60), ("crf", 10, 0.70), ("crf", 100, 0.72), ("softmax", None, 0.5), ("memm", 10, 0.65)]
    for i, (head, mult, f1) in enumerate(specs):
        sweep = _multirun(root / str(i), [f"head={head}", "seed=1,2"])
        for seed in (1, 2):
            _ner_job(sweep, seed - 1, head, mult, seed, round(f1 + 0.01 * seed, 4), NER_TYPES, bio=False)
    return root


def ner_pd(root: Path) -> Path:
    sweep = _multirun(root / "0", ["head=crf", "seed=1"])
    _ner_job(sweep, 0, "crf", 1, 1, 0.8, ("PER", "LOC", "ORG"), bio=True)
    return root


# ---------------------------------------------------------------------------------------- seed sweeps
def albert(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=albert_compare", "encoder.albert_unshared=false,true", "seed=1,2"])
    n = 0
    for unshared in ("false", "true"):
        for seed in (1, 2):
            acc = 0.8 + (0.02 if unshared == "true" else 0) + seed / 100
            hist = [[e, 10 * e + 9, round(acc - 0.1 + 0.05 * e, 4), 30.0 + e + seed] for e in range(3)]
            metrics = None if (unshared, seed) == ("true", 2) else {"test": {"acc": acc, "acc_unseen": acc - 0.05}}
            _job(
                sweep,
                n,
                f"seed: {seed}\nencoder:\n  albert_unshared: {unshared}\n",
                [f"encoder.albert_unshared={unshared}", f"seed={seed}"],
                ["epoch", "step", "val/acc", "train/epoch_seconds"],
                hist,
                metrics,
                "NaN loss",
            )
            n += 1
    return sweep


def albert_triples(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=albert_triples", "encoder.albert_unshared=false,true", "seed=1,2"])
    n = 0
    for unshared in ("false", "true"):
        for seed in (1, 2):
            f = 0.3 + (0.1 if unshared == "true" else 0) + seed / 100
            hist = []
            for e in range(3):
                hist += [
                    [e, 10 * e + 3, round(2.0 - 0.5 * e - seed / 10, 4), None, None, None],
                    [e, 10 * e + 6, round(1.9 - 0.5 * e, 4), None, None, None],
                    [e, 10 * e + 9, None, round(f + 0.1 * e, 4), 20.0 + e, 500.0 + 10 * e + seed],
                ]
            metrics = (
                {"test": {"f1": f + 0.2}, "train_epoch_seconds": [20.0, 21.0 + seed]}
                if seed == 1
                else {"test": {"f1": f + 0.2}}
            )
            _job(
                sweep,
                n,
                f"seed: {seed}\nencoder:\n  albert_unshared: {unshared}\n",
                [f"encoder.albert_unshared={unshared}", f"seed={seed}"],
                ["epoch", "step", "train/loss", "val/f1", "time/epoch_train_seconds", "time/peak_memory_mb"],
                hist,
                metrics,
            )
            n += 1
    return sweep


def orthogonality(root: Path) -> Path:
    arms = [("none", 0, 0.80, 0.010), ("som", "1.0e-08", 0.81, 0.006), ("biggan", "0.001", 0.82, 0.012)]
    for i, (kind, weight, acc, cos2) in enumerate(arms):
        sweep = _multirun(root / str(i), [f"model.orthogonality.kind={kind}", "seed=1,2"])
        for seed in (1, 2):
            a = round(acc + 0.01 * seed, 4)
            hist = [
                [0, 10, round(a - 0.1, 4), None, 11.0],
                [0, 10, None, 0.004, None],
                [1, 20, a, None, 12.0],
                [1, 20, None, 0.003 + seed / 1000, None],
            ]
            c = cos2 + 0.001 * seed
            metrics = {
                "test": {"acc": a},
                "geometry/final_gram_diag_mean": 0.5,
                "geometry/final_gram_offdiag_cos2_mean": c / 2,
                "geometry/init_filter_cos2_mean": 0.004,
                "geometry/final_filter_cos2_mean": c,
            }
            _job(
                sweep,
                seed - 1,
                f"seed: {seed}\nmodel:\n  orthogonality:\n    kind: {kind}\n    weight: {weight}\n",
                [f"model.orthogonality.kind={kind}", f"seed={seed}"],
                ["epoch", "step", "val/acc", "geometry/gram_dev_mean", "train/epoch_seconds"],
                hist,
                metrics,
            )
    return root


def pretrain(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=pretrain_compare", "encoder=bert_small,bert_small_pretrained", "seed=1,2"])
    n = 0
    for pre in ("null", "${paths.data_dir}/pretrained/bert_small"):
        for seed in (1, 2):
            f = 0.85 + (0.05 if pre != "null" else 0) + seed / 100
            hist = [[0, 150, round(f - 0.2, 4)], [0, 300, round(f - 0.05, 4)], [1, 450 + seed, f]]
            _job(
                sweep,
                n,
                f"seed: {seed}\nencoder:\n  pretrained: {pre}\n",
                [f"seed={seed}"],
                ["epoch", "step", "val/f1"],
                hist,
                {"test": {"f1": f - 0.01, "oov_recall": f - 0.3}},
            )
            n += 1
    return sweep


# ---------------------------------------------------------------------------------------- single runs
def _run(d: Path, metrics: dict[str, Any], config: str | None = None) -> Path:
    _write(d / "metrics.json", json.dumps(metrics))
    if config is not None:
        _write(d / ".hydra" / "config.yaml", config)
    return d


def triples(root: Path) -> Path:
    base = {"n_gold": 8, "n_texts": 4, "texts_per_s": 40.0}
    _run(
        root / "scratch",
        {
            "test": {
                **base,
                "precision": 0.5,
                "recall": 0.25,
                "f1": 1 / 3,
                "n_gold_not_found": 1,
                "n_gold_beyond_max_len": 2,
                "evaluated_on": "held-out records",
                "baseline_precision": 0.1,
                "baseline_recall": 0.2,
                "baseline_f1": 0.1333,
            },
            "wall_seconds": 12.0,
        },
    )
    _run(
        root / "pretrained",
        {
            "test": {**base, "precision": 0.6, "recall": 0.5, "f1": 0.5454, "evaluated_on": "held-out records"},
            "wall_seconds": 30.4,
        },
    )
    _run(
        root / "overfit",
        {
            "test": {
                **base,
                "precision": 1.0,
                "recall": 0.95,
                "f1": 0.97,
                "evaluated_on": "training records (overfit check)",
            },
            "wall_seconds": 7.6,
        },
    )
    return root


def mrc(root: Path) -> Path:
    bounds = {
        "baseline_acc": 0.05,
        "baseline_f1": 0.25,
        "baseline_final": 0.15,
        "baseline_cmrc_em": 0.01,
        "oracle_acc": 0.9,
        "oracle_f1": 0.95,
        "oracle_final": 0.925,
    }
    clock = [{"step": 50, "fit_seconds": 1.0}, {"step": 100, "fit_seconds": 2.0}]
    _run(
        root / "scratch",
        {
            "test": {
                "acc": 0.3,
                "f1": 0.5,
                "final": 0.4,
                "cmrc_em": 0.2,
                "cmrc_f1": 0.4,
                "no_answer_rate": 0.1,
                "n_questions": 412,
                "evaluated_on": "held-out questions",
                **bounds,
            },
            "wall_seconds": 61.4,
            "validation_clock": clock,
        },
    )
    _run(
        root / "overfit",
        {
            "test": {"acc": 0.95, "evaluated_on": "training questions (overfit check)", "n_questions": 200, **bounds},
            "wall_seconds": 30.0,
        },
    )
    _run(
        root / "seq2seq_overfit",
        {
            "test": {"acc": 0.92, "cmrc_em": 0.91, "evaluated_on": "training questions (overfit check)"},
            "wall_seconds": 33.3,
        },
    )
    bench = {
        "questions": 100,
        "passages": 230,
        "threads": 2,
        "constrained": {"questions_per_s": 12.0, "final": 0.4, "encoder_calls_per_question": 1.0},
        "autoregressive": {"questions_per_s": 2.0, "final": 0.41},
        "seq2seq_joint_nocache": {
            "questions_per_s": 2.4,
            "acc": 0.93,
            "final": 0.42,
            "beam_size": 1,
            "encoder_calls_per_question": 5.0,
        },
        "speedup_constrained_vs_autoregressive": 6.0,
        "speedup_mlm_vs_seq2seq_joint_nocache": 5.0,
    }
    _write(root / "bench.json", json.dumps(bench))
    return root


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


def _gen_config(pretrained: str = "null", conditional: bool = True, keep: str = "") -> str:
    return (
        f"encoder:\n  pretrained: {pretrained}\n  num_layers: 4\n  hidden_size: 256\n{keep}"
        f"model:\n  conditional: {str(conditional).lower()}\n  generation:\n    copy_min_chars: 20\n"
        "trainer:\n  max_epochs: 3\n"
    )


def _samples(d: Path, tag: str, n: int) -> None:
    recs = [
        {"label": lab, "label_name": name, "text": f"{tag}-{name}-{i}" + ("a|b" if i == 0 else "")}
        for lab, name in enumerate(("negative", "positive"))
        for i in range(n)
    ]
    _write(d / "predictions" / "test_samples.jsonl", "".join(json.dumps(r) + "\n" for r in recs))


def generation(root: Path) -> Path:
    s = _run(root / "scratch", {"test": GEN, "wall_seconds": 600.0}, _gen_config())
    _samples(s, "s", 6)
    p = _run(
        root / "pretrained",
        {"test": {**GEN, "ppl": 20.0}, "wall_seconds": 900.0},
        _gen_config("${paths.data_dir}/pretrained/bert_small", keep="  keep_layers: 2\n"),
    )
    _samples(p, "p", 2)
    u = _run(root / "unconditional", {"test": {**GEN, "control_acc": 0.5}}, _gen_config(conditional=False))
    _write(
        u / "samples_test.md",
        "| label | # | text |\n|---|---|---|\n| negative | 1 | u-n\\|x |\n| positive | 1 | u-p |\n",
    )
    _run(
        root / "overfit",
        {
            "test": {"ppl": 3.5, "ppl_negative": 3.4, "ppl_positive": 3.6, "n_tokens": 900},
            "data_stats": {"test_texts": 200, "test_chunks": 260, "test_tokens": 9000},
        },
        _gen_config(),
    )
    _run(
        root / "overfit_heldout",
        {
            "test": {"ppl": 95.0, "ppl_negative": 90.0, "ppl_positive": 100.0},
            "data_stats": {"test_texts": 2111, "test_chunks": 3000},
        },
    )
    _run(root / "classifier", {"test": {"acc": 0.9012, "n_examples": 2111}})
    _write(
        root / "bench.json",
        json.dumps(
            {
                "model": "fresh small",
                "layers": 2,
                "hidden": 256,
                "vocab": 7437,
                "threads": 2,
                "rows": 16,
                "max_len": 126,
                "cached": {"tokens_per_s": 4000.0},
                "uncached": {"tokens_per_s": 400.0},
                "ratio_cached_over_uncached": 10.0,
                "greedy_identical": True,
            }
        ),
    )
    return root


# ---------------------------------------------------------------------------------------- bertlab.report
def multirun_report(root: Path) -> Path:
    sweep = _multirun(root, ["experiment=cws_crf", "optimizer.lr_multipliers.crf=1,10", "seed=1,2"])
    header = ["epoch", "step", "train/loss", "val/f1", "val/precision"]
    n = 0
    for mult in (1, 10):
        for seed in (1, 2):
            f = [0.5 + mult / 100 + seed / 50, 0.7 + seed / 100, 0.65]
            hist = [
                [0, 9, 1.2, None, None],
                [0, 9, None, f[0], 0.6],
                [1, 19, 0.8, None, None],
                [1, 19, None, f[1], 0.72],
                [2, 29, None, f[2], 0.7],
            ]
            done = (mult, seed) != (10, 2)
            metrics = (
                {"val/f1": f[2], "test": {"f1": 0.61 + seed / 100, "precision": 0.6, "recall": 0.62, "n_gold": 10}}
                if done
                else None
            )
            _job(
                sweep,
                n,
                "seed: 1\n",
                ["experiment=cws_crf", f"optimizer.lr_multipliers.crf={mult}", f"seed={seed}"],
                header,
                hist if done else hist[:2],
                metrics,
                "disk full",
            )
            n += 1
    return sweep


def optuna_report(root: Path) -> Path:
    header = ["epoch", "step", "val/f1"]
    for n, (lr, seed, f1s, done) in enumerate(
        [
            ("0.001", 1, [0.5, 0.7], True),
            ("0.001", 2, [0.6, 0.9], True),
            ("0.01", 1, [0.2, 0.4], True),
            ("0.01", 2, [0.3], False),
        ]
    ):
        job = _job(
            root,
            n,
            "seed: 1\n",
            [f"optimizer.lr={lr}", f"seed={seed}", "hparams_search=cws_optuna"],
            header,
            [[e, 10 * e + 9, f] for e, f in enumerate(f1s)],
            {"val/f1": f1s[-1]} if done else None,
        )
        _write(
            job / ".hydra" / "hydra.yaml",
            "hydra:\n  sweeper:\n    params:\n      optimizer.lr: tag(log, interval(1e-4, 1e-2))\n"
            "      seed: choice(1, 2)\n",
        )
    _write(
        root / "optimization_results.yaml",
        "name: optuna\nbest_params:\n  optimizer.lr: 0.001\n  seed: 2\nbest_value: 0.9\n",
    )
    return root


#: table name -> (fixture builder, the command: "reproduce <args>" or "report <args>", the markdown
#: it writes); ``{d}`` is the fixture folder
TABLES: dict[str, tuple[Any, list[str], str]] = {
    "crf": (crf_layer1, ["reproduce", "crf", "--report-only", "{d}"], "crf_layer1.md"),
    "crf_claim": (crf_claim, ["reproduce", "crf_claim", "--report-only", "{d}"], "crf_lr_claim.md"),
    "crf_mechanism": (crf_mechanism, ["reproduce", "crf_mechanism", "--report-only", "{d}"], "crf_mechanism.md"),
    "ner": (ner, ["reproduce", "ner", "--multirun", "{d}", "--out", "{d}/ner.md"], "ner.md"),
    "ner_pd": (ner_pd, ["reproduce", "ner_pd", "--multirun", "{d}", "--out", "{d}/ner_pd.md"], "ner_pd.md"),
    "albert": (albert, ["reproduce", "albert", "--multirun", "{d}", "--out", "{d}/albert.md"], "albert.md"),
    "albert_triples": (
        albert_triples,
        ["reproduce", "albert_triples", "--multirun", "{d}", "--out", "{d}/albert_triples.md"],
        "albert_triples.md",
    ),
    "orthogonality": (orthogonality, ["reproduce", "orthogonality", "--multirun", "{d}", "--out", "{d}/o.md"], "o.md"),
    "pretrain": (pretrain, ["reproduce", "pretrain", "--multirun", "{d}", "--out", "{d}/p.md"], "p.md"),
    "triples": (triples, ["reproduce", "triples", "--report-only", "--dir", "{d}"], "results.md"),
    "mrc": (mrc, ["reproduce", "mrc", "--report-only", "--dir", "{d}"], "results.md"),
    "generation": (
        generation,
        ["reproduce", "generation", "--report-only", "--dir", "{d}", "--cls-dir", "{d}/classifier", "--samples", "3"],
        "results.md",
    ),
    "report": (multirun_report, ["report", "{d}"], "report.md"),
    "report_optuna": (optuna_report, ["report", "{d}"], "report.md"),
}


def run_command(argv: list[str], folder: Path) -> int:
    """Run a command of :data:`TABLES` on the fixture in ``folder`` (output swallowed); its exit status."""
    argv = [a.format(d=folder) for a in argv]
    if argv[0] == "report":
        from bertlab.report import main
    else:
        from bertlab.reproduce.__main__ import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv[1:])
