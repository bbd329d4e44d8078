"""python -m bertlab.reproduce: the registry, --dry-run of every post, the runner's chain rules,
and the Makefile's reproduce-* targets calling only it."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bertlab.reproduce import get, names
from bertlab.reproduce.__main__ import main
from bertlab.reproduce.base import Command, Reproduction, best_checkpoint, path_exists, run

ROOT = Path(__file__).resolve().parents[2]
POSTS = [
    "albert",
    "albert_triples",
    "crf",
    "crf_claim",
    "crf_mechanism",
    "generation",
    "mrc",
    "ner",
    "ner_pd",
    "orthogonality",
    "pretrain",
    "triples",
]


def test_list_names_all_twelve_with_a_description(capsys):
    assert names() == POSTS
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == POSTS
    for line, name in zip(lines, POSTS):
        assert line[len(name) :].strip() == get(name).description and len(line.split()) > 3


def test_help_lists_every_name_with_its_description():
    out = subprocess.run(
        [sys.executable, "-m", "bertlab.reproduce", "--help"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    flat = " ".join(out.split())
    for name in POSTS:
        assert f"{name} {' '.join(get(name).description.split())}" in flat


def _no_subprocess(monkeypatch):
    def boom(*a, **k):
        raise AssertionError(f"dry-run ran a command: {a}")

    monkeypatch.setattr(subprocess, "run", boom)


# the commands each dry-run must print (fragments of its lines, in order)
EXPECTED = {
    "crf": [
        [
            "-m bertlab.train -m experiment=crf_layer1/crf1,crf_layer1/crf2,crf_layer1/crf3,crf_layer1/softmax,",
            "seed=1,2,3",
            "test_every_epoch=true",
        ]
    ],
    "crf_claim": [["experiment=crf_lr_claim", "optimizer.lr_multipliers.crf=1,100,1000", "seed=1,2,3"]],
    "crf_mechanism": [
        ["experiment=crf_layer1/crf1", "val_check_interval=0.25", "lr_multipliers.crf=1,10,100,1000", "seed=1 "]
    ],
    "ner": [
        ["experiment=ner_crf", "data=ner_resume", "head=crf", "lr_multipliers.crf=1 ", "seed=1,2,3"],
        ["head=crf", "lr_multipliers.crf=10 "],
        ["head=crf", "lr_multipliers.crf=100 "],
        ["head=softmax", "~optimizer.lr_multipliers.crf"],
        ["head=memm", "+optimizer.lr_multipliers.memm=10"],
    ],
    "ner_pd": [
        [
            "experiment=ner_crf",
            "data=ner_peoples_daily",
            "data.split=dev_train",
            "lr_multipliers.crf=1 ",
            "max_time=00:00:08:00",
        ],
        ["data=ner_peoples_daily", "head=crf", "lr_multipliers.crf=10 "],
        ["data=ner_peoples_daily", "head=crf", "lr_multipliers.crf=100 "],
        ["data=ner_peoples_daily", "head=softmax"],
        ["data=ner_peoples_daily", "head=memm"],
    ],
    "albert": [["-m bertlab.train -m experiment=albert_compare"]],
    "albert_triples": [["-m bertlab.train -m experiment=albert_triples"]],
    "orthogonality": [
        ["kind=none"],
        ["kind=som", "weight=1e-8"],
        ["kind=som", "weight=1e-7"],
        ["kind=soft"],
        ["kind=biggan"],
    ],
    "pretrain": [["-m bertlab.train -m experiment=pretrain_compare"]],
    "triples": [
        ["experiment=triples hydra.run.dir=logs/reproduce/triples/scratch"],
        ["experiment=triples_overfit hydra.run.dir=logs/reproduce/triples/overfit"],
        ["if [ -d data/pretrained/bert_small ]", "encoder=bert_small_pretrained"],
    ],
    "mrc": [
        ["experiment=mrc_mlm hydra.run.dir=logs/reproduce/mrc/scratch"],
        ["experiment=mrc_mlm_overfit"],
        ["if [ -d data/pretrained/bert_small ]", "optimizer.lr=1e-4"],
        ["experiment=mrc_seq2seq_overfit hydra.run.dir=logs/reproduce/mrc/seq2seq_overfit"],
        ["if [ -d data/pretrained/bert_small ]", "experiment=mrc_seq2seq", "encoder=bert_small_pretrained"],
        [
            "scripts/bench_mrc.py --ckpt 'logs/reproduce/mrc/overfit/checkpoints/best-*.ckpt' --seq2seq-ckpt "
            "'logs/reproduce/mrc/seq2seq_overfit/checkpoints/best-*.ckpt' --questions 100"
        ],
    ],
    "generation": [
        ["if ! [ -f logs/reproduce/generation/classifier/metrics.json ]", "experiment=sentiment_cls"],
        ["experiment=cond_gen", "model.control_classifier_ckpt=logs/reproduce/generation/classifier/checkpoints/"],
        ["experiment=cond_gen_uncond"],
        ["if [ -d data/pretrained/bert_small ]", "encoder=bert_small_pretrained"],
        ["experiment=cond_gen_overfit"],
        ["-m bertlab.evaluate", "+data.overfit_texts=null", "overfit_heldout"],
        ["scripts/bench_generate.py", "--json logs/reproduce/generation/bench.json"],
    ],
}


@pytest.mark.parametrize("name", POSTS)
def test_dry_run_prints_the_commands_and_runs_nothing(name, monkeypatch, capsys, tmp_path):
    assert set(EXPECTED) == set(POSTS)
    _no_subprocess(monkeypatch)
    before = sorted(p.name for p in (ROOT / "logs").glob("*")) if (ROOT / "logs").is_dir() else []
    assert main([name, "--dry-run", "--", "threads=1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cmds, last = lines[:-1], lines[-1]
    assert len(cmds) == len(EXPECTED[name])
    for line, parts in zip(cmds, EXPECTED[name]):
        assert line.startswith(("python ", "if ")), line
        for part in parts:
            assert part in line + " ", (part, line)
        if "bertlab.train" in line:
            assert line.removesuffix("; fi").endswith(" threads=1")  # the overrides reach every training
    assert last.startswith("# then the table -> ") and last.endswith(".md")
    assert "/docs/" not in last and not last.removeprefix("# then the table -> ").startswith("docs/")
    after = sorted(p.name for p in (ROOT / "logs").glob("*")) if (ROOT / "logs").is_dir() else []
    assert after == before  # no folder was made


def test_unknown_name_bad_option_and_bad_rows_are_usage_errors(capsys):
    assert main(["nope"]) == 2
    assert main(["orthogonality", "--seeds", "a,b"]) == 2
    assert "comma-separated list of integers" in capsys.readouterr().err
    assert main(["crf", "--rows", "crf1,crf9", "--dry-run"]) == 2
    assert "crf_layer1/crf9.yaml" in capsys.readouterr().err


def _rep(cmds, reported):
    def report(args):
        reported.append(args.wall_seconds)
        return 0

    return Reproduction(name="t", description="d", table="t.md", plan=lambda a, o: cmds, report=report)


def _args(**kw):
    return argparse.Namespace(dry_run=False, out="t.md", **kw)


def test_runner_chain_stops_on_a_failure_but_a_sweep_keeps_going(tmp_path, capsys):
    mark = tmp_path / "ran"
    touch = Command(["python", "-c", f"open({str(mark)!r}, 'a').write('x')"])
    fail = Command(["python", "-c", "raise SystemExit(3)"])
    reported: list = []
    assert run(_rep([fail, touch], reported), _args(), []) == 3  # the chain stops, no table
    assert not mark.exists() and reported == []
    sweep = Command(["python", "-c", "raise SystemExit(3)"], keep_going=True)
    assert run(_rep([sweep, touch], reported), _args(), []) == 1  # runs on, tabulates, exits 1
    assert mark.read_text() == "x" and len(reported) == 1 and reported[0] > 0
    skipped = Command(["python", "-c", "raise SystemExit(5)"], only_if=path_exists(tmp_path / "absent"))
    assert run(_rep([skipped], reported), _args(), []) == 0
    assert "is false" in capsys.readouterr().out


def test_a_missing_best_checkpoint_stops_the_chain_with_one_error_line(tmp_path, capsys):
    cmd = Command(["python", "-c", "pass", best_checkpoint(tmp_path / "run")])
    assert run(_rep([cmd], []), _args(), []) == 2
    assert "best-*.ckpt" in capsys.readouterr().err
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "best-step0000009.ckpt").write_text("")
    assert cmd.resolved()[-1] == str(tmp_path / "run" / "checkpoints" / "best-step0000009.ckpt")


def _make_targets() -> dict[str, list[str]]:
    targets: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):", line)
        if m:
            current = m.group(1)
            targets[current] = []
        elif line.startswith("\t") and current:
            targets[current].append(line.strip())
        elif line.strip() and not line.startswith("\t"):
            current = None
    return targets


def test_makefile_reproduce_targets_call_only_bertlab_reproduce():
    targets = _make_targets()
    repro = {t: body for t, body in targets.items() if t.startswith("reproduce-")}
    called = []
    for target, body in repro.items():
        assert body, target
        names_called = [line.split()[1] for line in body]
        assert all(line.startswith("$(REPRODUCE) ") for line in body), (target, body)
        assert names_called[0] == target[len("reproduce-") :].replace("-", "_"), (target, body)
        called += names_called
    # every reproduction is run by exactly one target; reproduce-albert runs both ALBERT tables
    assert sorted(called) == POSTS
    assert repro["reproduce-albert"] == [
        "$(REPRODUCE) albert $(DRY_FLAG) $(OVERRIDES)",
        "$(REPRODUCE) albert_triples $(DRY_FLAG) $(OVERRIDES)",
    ]
    assert "REPRODUCE = $(PY) -m bertlab.reproduce" in (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith(".PHONY"))
    assert set(repro) <= set(phony.split())
    assert not list((ROOT / "scripts").glob("reproduce_*.py"))


def test_ner_arms_compose(make_cfg):
    from bertlab.reproduce.ner import ARMS, sweeps

    got = []
    for overrides in sweeps("1"):
        cfg = make_cfg(["experiment=ner_crf", *overrides])
        got.append((cfg.head.type, dict(cfg.optimizer.lr_multipliers), cfg.data.dataset, cfg.trainer.max_time))
    pd = make_cfg(["experiment=ner_crf", *sweeps("1", "ner_peoples_daily", ("data.split=dev_train",))[3]])
    assert (pd.head.type, pd.data.dataset, pd.data.scheme, pd.data.split) == (
        "softmax",
        "peoples_daily",
        "BIO",
        "dev_train",
    )
    assert [g[:2] for g in got] == [
        ("crf", {"crf": 1}),
        ("crf", {"crf": 10}),
        ("crf", {"crf": 100}),
        ("softmax", {}),
        ("memm", {"memm": 10}),
    ]
    assert {g[2:] for g in got} == {("resume", "00:00:08:00")} and len(ARMS) == 5


def test_generation_overrides_reach_the_classifier_and_the_evaluation(capsys):
    """The overrides after -- reach every training, the classifier's too (its --cls-args after
    them, so they win), and the held-out evaluation gets those bertlab.evaluate takes."""
    argv = ["generation", "--dry-run", "--dir", "g", "--cls-dir", "c", "--cls-args", "threads=1 trainer.max_epochs=1"]
    assert main([*argv, "--", "threads=2", "trainer.accelerator=cpu", "encoder.num_layers=1"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0] == (
        "if ! [ -f c/metrics.json ]; then python -m bertlab.train experiment=sentiment_cls hydra.run.dir=c "
        "threads=2 trainer.accelerator=cpu encoder.num_layers=1 threads=1 trainer.max_epochs=1; fi"
    )
    assert (
        "'model.control_classifier_ckpt=c/checkpoints/best-*.ckpt' hydra.run.dir=g/scratch threads=2 "
        "trainer.accelerator=cpu encoder.num_layers=1" in lines[1]
    )
    evaluate = next(line for line in lines if "bertlab.evaluate" in line)
    assert evaluate.endswith(
        "+data.overfit_texts=null hydra.run.dir=g/overfit_heldout threads=2 trainer.accelerator=cpu"
    )
    assert "bertlab.evaluate takes no encoder.num_layers=1" in out.err  # threads: evaluate takes it
    assert lines[-1] == f"# then the table -> {ROOT / 'g' / 'results.md'}"


def test_evaluate_takes_the_keys_of_its_config():
    from bertlab.reproduce.base import evaluate_overrides

    taken, left = evaluate_overrides(
        [
            "trainer.devices=1",
            "+trainer.x=1",
            "logger=csv",
            "paths.log_dir=/x",
            "hydra.run.dir=d",
            "threads=1",
            "data.max_len=64",
            "optimizer.lr=1e-3",
            "seed=3",
        ]
    )
    assert taken == [
        "trainer.devices=1",
        "+trainer.x=1",
        "logger=csv",
        "paths.log_dir=/x",
        "hydra.run.dir=d",
        "threads=1",
    ]
    assert left == ["data.max_len=64", "optimizer.lr=1e-3", "seed=3"]


@pytest.mark.parametrize("name", ["albert", "albert_triples", "ner", "ner_pd", "orthogonality", "pretrain"])
def test_seed_sweep_tables_go_into_their_sweep_folder_and_into_docs_only_by_out(name, capsys):
    assert main([name, "--dry-run", "--sweep-dir", "logs/x/s"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"# then the table -> {ROOT / 'logs/x/s'}/{name_of(name)}"
    assert main([name, "--dry-run", "--multirun", "/tmp/m"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"# then the table -> /tmp/m/{name_of(name)}"
    assert main([name, "--dry-run", "--out", f"docs/{name_of(name)}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"# then the table -> docs/{name_of(name)}"
    assert f"--out docs/{name_of(name)}" in get(name).table


def name_of(name: str) -> str:
    return {
        "albert": "albert_unshared.md",
        "ner_pd": "ner_peoples_daily.md",
        "pretrain": "pretrain_compare.md",
    }.get(name, f"{name}.md")


def test_albert_triples_table_pairs_epoch1_f1_and_time_by_seed(tmp_path):
    """A FABRICATED albert_triples sweep (made-up numbers): epoch-1 F1, report F1, s/epoch and peak
    memory per arm, and the paired differences unshared - shared."""
    import json

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n")
    num = 0
    for unshared in (False, True):
        for seed in (1, 2):
            job = sweep / str(num)
            num += 1
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "config.yaml").write_text(
                f"seed: {seed}\nencoder:\n  albert_unshared: {str(unshared).lower()}\n"
            )
            e1 = 0.40 + 0.10 * unshared + 0.01 * seed
            (job / "csv").mkdir()
            (job / "csv" / "metrics.csv").write_text(
                "epoch,step,val/f1,time/epoch_train_seconds,time/peak_memory_mb,train/loss\n"
                f"0,5,,,,{0.9 - 0.1 * unshared}\n0,9,,,,{0.7 - 0.1 * unshared}\n"
                f"0,10,{e1},,,\n0,10,,{10 + 2 * unshared},{800 + 50 * unshared},\n1,20,{e1 + 0.2},,,\n"
                f"1,15,,,,{0.3 - 0.05 * seed}\n"
            )
            (job / "metrics.json").write_text(
                json.dumps({"test": {"f1": e1 + 0.15}, "train_epoch_seconds": [10 + 2 * unshared, 10 + 2 * unshared]})
            )
    out = tmp_path / "t.md"
    assert main(["albert_triples", "--multirun", str(sweep), "--out", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    head = [c.strip() for c in next(x for x in md.splitlines() if x.startswith("| arm |")).split("|")[1:-1]]
    row = dict(
        zip(
            head, (c.strip() for c in next(x for x in md.splitlines() if x.startswith("| unshared |")).split("|")[1:-1])
        )
    )
    assert row["epoch-1 val F1 (%)"] == "51.50 ± 0.71" and row["best val F1 (%)"] == "71.50 ± 0.71"
    assert row["Δ epoch-1 val F1 vs shared, same seed (pp)"].startswith("+10.00 ± ")
    assert row["Δ best val F1 vs shared, same seed (pp)"].startswith("+10.00 ± 0.00")
    assert row["Δ train s / epoch vs shared"].startswith("+2.0 ± 0.0") and row["peak memory (MiB)"] == "850 ± 0"
    # mean train loss over the epoch: (0.8 + 0.6) / 2 = 0.7 unshared, 0.8 shared; last epoch by seed
    assert row["train loss, epoch 1"] == "0.7000 ± 0.0000" and row["train loss, last epoch"] == "0.2250 ± 0.0354"
    assert row["Δ train loss epoch 1 vs shared"].startswith("-0.1000 ± 0.0000")
    assert row["Δ train loss last epoch vs shared"].startswith("+0.0000 ± 0.0000")
    # mean val F1 over the epochs (e1, e1 + 0.2): seeds 0.51 / 0.52 shared, 0.61 / 0.62 unshared
    assert row["mean val F1 over epochs (%)"] == "61.50 ± 0.71"
    assert row["Δ mean val F1 vs shared, same seed (pp)"].startswith("+10.00 ± 0.00")
    png = tmp_path / "t_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "`t_curve.png`" in md
    assert "61.11" in md  # the post's numbers are set beside the table


def test_crf_mechanism_settings_compose_with_every_multiplier(make_cfg):
    from bertlab.reproduce.crf_mechanism import SETTINGS

    for setting, (exp, val) in SETTINGS.items():
        for mult in (1, 1000):
            cfg = make_cfg([exp, val, f"++optimizer.lr_multipliers.crf={mult}", "trainer.max_epochs=2"])
            assert cfg.head.type == "crf" and cfg.optimizer.lr_multipliers.crf == mult
            assert cfg.trainer.val_check_interval == 0.25, setting
    assert make_cfg(SETTINGS["claim"]).encoder.pretrained  # the claim runs the pretrained small BERT
