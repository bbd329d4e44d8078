"""The conditional LM end to end: the condition is learnt and steers generation, cached ==
uncached decoding, fast_dev_run of experiment=cond_gen, the generate CLI on a tiny checkpoint."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from bertlab.data.generation_datamodule import GenerationDataModule
from bertlab.nn.conditioning import ContextLayerNorm
from bertlab.tasks.conditional_generation import (
    ConditionalGenerationModule,
    labels_from_records,
    samples_markdown,
)
from bertlab.train import train
from bertlab.utils.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")
CONFIG = str(ROOT / "data/vocab/bert-base-chinese/bert_config.json")
TINY_ENC = dict(
    model_type="bert",
    vocab_file=VOCAB,
    config_file=CONFIG,
    num_layers=1,
    hidden_size=32,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    trim_vocab="corpus",
)
TINY = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_chars=20000",
    "data.max_eval_sentences=20",
    "callbacks.rich_progress_bar=null",
    "model.generation.num_samples=3",
    "model.generation.val_num_samples=2",
    "model.generation.max_len=12",
]


def _toy_zip(tmp_path):
    """Label 1 texts are made of 好, label 0 texts of 差: a learnt condition must tell them apart."""
    z = tmp_path / "toy.zip"
    lines = "".join(f"{'好' * (3 + i % 4)}\t1\n{'差' * (3 + i % 4)}\t0\n" for i in range(40))
    with zipfile.ZipFile(z, "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"sentiment/sentiment.{split}.data", lines)
    return str(z)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    dm = GenerationDataModule(_toy_zip(tmp), VOCAB, batch_size=16, trim_vocab="corpus", seed=0)
    dm.setup("fit")
    kw = dm.model_kwargs()
    torch.manual_seed(0)
    model = ConditionalGenerationModule(TINY_ENC, {"_target_": "torch.optim.Adam", "lr": 1e-2}, **kw)
    return dm, model, kw


def _logits(model, dm, label):
    batch = next(iter(dm.val_dataloader()))
    batch["cond_labels"] = torch.full_like(batch["cond_labels"], label)
    model.eval()
    with torch.no_grad():
        return model.target_logits(batch)[0]


def test_condition_has_no_effect_at_init_and_a_clear_one_after_training(toy):
    dm, model, _ = toy
    assert torch.equal(_logits(model, dm, 0), _logits(model, dm, 1))  # zero-initialised W_g / W_b
    assert len({id(m) for m in model.modules() if isinstance(m, ContextLayerNorm)}) == 4  # emb, 2 in block, head
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(6):
        for batch in dm.train_dataloader():
            logits, targets = model.target_logits(batch)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert (_logits(model, dm, 0) - _logits(model, dm, 1)).abs().max() > 1.0
    good, bad = dm.tokenizer.vocab["好"], dm.tokenizer.vocab["差"]
    ids = model.generate_ids([1, 0], strategy="greedy", max_len=8)
    assert ids[0] and set(ids[0]) == {good} and ids[1] and set(ids[1]) == {bad}
    # the condition alone decides: every label-1 sample is judged positive by a stand-in classifier
    model.set_control_classifier(lambda texts: [1 if "好" in t else 0 for t in texts])

    class _Trainer:
        datamodule = dm

    model._trainer = _Trainer()  # sample_texts decodes with the trainer's datamodule
    try:
        samples = model.sample_texts(4, strategy="topk", k=2, max_len=6)
        metrics = model.sample_metrics(samples)
    finally:
        model._trainer = None
    assert [s["label"] for s in samples] == [0] * 4 + [1] * 4
    assert metrics["control_acc"] == 1.0
    assert 0 < metrics["distinct_1"] <= 1 and "copy_rate" in metrics


def test_cached_and_uncached_decoding_agree_and_special_tokens_never_appear(toy):
    dm, model, kw = toy
    labels = [0, 1, 1, 0]
    greedy = model.generate_ids(labels, strategy="greedy", max_len=10, use_cache=True)
    assert greedy == model.generate_ids(labels, strategy="greedy", max_len=10, use_cache=False)
    assert greedy == model.generate_ids(labels, strategy="topk", k=1, max_len=10, seed=4)
    assert greedy == model.generate_ids(labels, strategy="beam", beam_size=1, max_len=10)
    assert model.generate_ids(labels, strategy="beam", beam_size=3, max_len=6, use_cache=True) == model.generate_ids(
        labels, strategy="beam", beam_size=3, max_len=6, use_cache=False
    )
    for strategy in ("topk", "topp", "temperature"):
        a = model.generate_ids(labels * 4, strategy=strategy, k=30, p=0.99, temperature=3.0, max_len=10, seed=1)
        assert a == model.generate_ids(
            labels * 4, strategy=strategy, k=30, p=0.99, temperature=3.0, max_len=10, seed=1, use_cache=False
        )
        banned = {kw["special_ids"][k] for k in ("pad", "unk", "cls", "mask", "sep")}
        assert not any(t in banned for row in a for t in row) and all(len(r) <= 10 for r in a)
    with pytest.raises(ValueError, match="unknown label 5"):
        model.generate_ids([5])


def test_unconditional_baseline_has_plain_layer_norms(toy):
    _, _, kw = toy
    model = ConditionalGenerationModule(TINY_ENC, {"_target_": "torch.optim.Adam", "lr": 1e-3}, conditional=False, **kw)
    assert not any(isinstance(m, ContextLayerNorm) for m in model.modules())
    assert any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())


def test_samples_markdown_and_classifier_records():
    md = samples_markdown([{"label_name": "positive", "text": "a|b"}, {"label_name": "positive", "text": "c"}])
    assert "| positive | 1 | a\\|b |" in md and "| positive | 2 | c |" in md
    assert labels_from_records([{"label": "positive"}, {"label_id": 0}, {"label": "1"}], ["negative", "positive"]) == [
        1,
        0,
        1,
    ]
    with pytest.raises(CheckpointError, match="no label id"):
        labels_from_records([{"text": "x"}], ["negative", "positive"])


def test_fast_dev_run_cond_gen(make_cfg, tmp_path):
    cfg = make_cfg(["experiment=cond_gen", "debug=fdr", *TINY])
    metrics, objs = train(cfg)
    assert "train/loss" in metrics
    test = metrics["test"]
    assert test["ppl"] > 1 and "ppl_negative" in test and "ppl_positive" in test and "distinct_2" in test
    assert (tmp_path / "samples_test.md").read_text(encoding="utf-8").count("| negative |") == 3
    assert len(objs["datamodule"].tokenizer) < 8000  # the trimmed vocab


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("cond_gen_run")
    cfg = compose_cfg(
        out,
        [
            "experiment=cond_gen",
            *TINY,
            "trainer.max_steps=3",
            "trainer.val_check_interval=3",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "logger=csv",
        ],
    )
    train(cfg)
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def _cli(*args):
    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bertlab.generate", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.slow
def test_generate_cli_and_function_on_a_tiny_checkpoint(tiny_ckpt, tmp_path):
    from bertlab.generate import generate_texts, load_generator

    res = _cli(f"ckpt_path={tiny_ckpt}", "label=1", "n=3", "strategy=topk", "k=5", "max_len=8", "seed=2")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert len(lines) == 3
    model, dm = load_generator(str(tiny_ckpt))
    same = generate_texts(label="positive", n=3, strategy="topk", k=5, max_len=8, seed=2, model=model, datamodule=dm)
    assert same == lines  # the function and the CLI agree; the seed reproduces
    # max_len counts tokens, not characters (a vocab token such as "..." decodes to several)
    ids = model.generate_ids([1] * 3, strategy="topk", k=5, max_len=8, seed=2)
    assert [dm.decode_ids(t) for t in ids] == lines and all(1 <= len(t) <= 8 for t in ids)
    beam = generate_texts(label=0, n=1, strategy="beam", beam_size=3, max_len=6, model=model, datamodule=dm)
    beam_ids = model.generate_ids([0], strategy="beam", beam_size=3, max_len=6)
    assert len(beam) == 1 and beam == [dm.decode_ids(beam_ids[0])] and len(beam_ids[0]) <= 6
    # bad input: one line naming the value, exit status 2
    for args, needle in (
        (["label=7"], "unknown label 7"),
        (["n=0"], "'n'"),
        (["strategy=topk", "k=100000"], "100000"),
        (["strategy=nucleus"], "nucleus"),
    ):
        res = _cli(f"ckpt_path={tiny_ckpt}", *args)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, (
            args,
            res.stderr[-1500:],
        )
    # a checkpoint of another task
    ck = torch.load(tiny_ckpt, map_location="cpu", weights_only=False)
    ck["bertlab"]["config"]["model"]["_target_"] = "bertlab.tasks.sequence_labeling.SequenceLabelingModule"
    other = tmp_path / "other.ckpt"
    torch.save(ck, other)
    res = _cli(f"ckpt_path={other}")
    assert res.returncode == 2 and "not a conditional_generation one" in res.stderr


@pytest.mark.slow
def test_control_accuracy_with_a_tiny_trained_classification_checkpoint(tmp_path_factory, make_cfg):
    """End to end: a tiny sentence classifier (tasks/classification.py) trained on a slice of the
    corpus judges the samples of a cond_gen run through model.control_classifier_ckpt."""
    from tests.conftest import compose_cfg

    from bertlab.tasks.conditional_generation import load_control_classifier

    out = tmp_path_factory.mktemp("classifier")
    cls_cfg = compose_cfg(
        out,
        [
            "experiment=sentiment_cls",
            "encoder.pretrained=null",
            "encoder.model_type=bert",
            "encoder.num_layers=1",
            "encoder.hidden_size=32",
            "encoder.num_attention_heads=2",
            "encoder.intermediate_size=64",
            "callbacks.rich_progress_bar=null",
            "data.max_train_examples=300",
            "data.max_eval_examples=50",
            "trainer.max_epochs=1",
            "scheduler=constant",
            "optimizer.lr=1e-3",
        ],
    )
    train(cls_cfg)
    ckpt = str(out / "checkpoints" / "last.ckpt")
    judge = load_control_classifier(ckpt, ["negative", "positive"])
    labels = judge(["很好很满意", "太差了", ""])
    assert len(labels) == 3 and set(labels) <= {0, 1}
    cfg = make_cfg(["experiment=cond_gen", "debug=fdr", *TINY, f"model.control_classifier_ckpt={ckpt}"])
    metrics, objs = train(cfg)
    acc = metrics["test"]["control_acc"]
    samples = objs["model"].last_outputs["test"]
    # the metric is exactly the share of samples the judge assigns to their own label
    want = sum(p == s["label"] for p, s in zip(judge([s["text"] for s in samples]), samples)) / len(samples)
    assert acc == pytest.approx(want)
    with pytest.raises(CheckpointError, match="not a classification one"):
        load_control_classifier(_lm_ckpt_for_error(tmp_path_factory), ["negative", "positive"])


def _lm_ckpt_for_error(tmp_path_factory):
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("lm_for_error")
    cfg = compose_cfg(
        out,
        [
            "experiment=cond_gen",
            *TINY,
            "trainer.max_steps=1",
            "trainer.val_check_interval=1",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "test=false",
        ],
    )
    train(cfg)
    return str(out / "checkpoints" / "last.ckpt")


def test_samples_table_reaches_wandb_and_csv_loggers(make_cfg, tmp_path, monkeypatch):
    """A short real run with logger=many (W&B offline): the test samples become a W&B table
    and a CSV table with the same rows as samples_test.md."""
    import csv
    import glob
    import json

    from bertlab.utils.wandb_utils import read_offline_run, wandb_run_finished

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = make_cfg(
        [
            "experiment=cond_gen",
            *TINY,
            "logger=many",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1",
            "model.generation.val_num_samples=0",
        ]
    )
    with wandb_run_finished():
        metrics, objs = train(cfg)
    samples = objs["model"].last_outputs["test"]
    rows = [[s["label_name"], s["text"]] for s in samples]
    assert len(rows) == 6 and "distinct_1" in metrics["test"]
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    # the table's JSON is written when it is logged (the history row that points at it is buffered
    # by wandb until the next step or finish, and offline it is sometimes missing from the .wandb file)
    tables = [m for m in run["media"] if m.endswith(".table.json")]
    assert [t.split("_")[0] for t in tables] == ["table/test/samples"], run["media"]
    got = json.loads(Path(runs[0], "files", "media", tables[0]).read_text(encoding="utf-8"))
    assert got["columns"] == ["label", "text"] and got["data"] == rows
    csv_files = glob.glob(str(tmp_path / "**" / "tables" / "test_samples-step*.csv"), recursive=True)
    assert len(csv_files) == 1
    with open(csv_files[0], encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["label", "text"], *rows]


def test_fixed_length_generation_bans_sep(toy):
    dm, model, kw = toy
    ids = model.generate_ids([0, 1, 1], strategy="greedy", max_len=7, stop_at_sep=False)
    assert [len(r) for r in ids] == [7, 7, 7]
    assert not any(t == kw["special_ids"]["sep"] for r in ids for t in r)
    assert ids == model.generate_ids([0, 1, 1], strategy="greedy", max_len=7, stop_at_sep=False, use_cache=False)


def test_generate_texts_bad_input_names_the_value(toy, tmp_path):
    """Every bad request of bertlab.generate is one ConfigError/CheckpointError naming the
    key and the value (the CLI prints it as one line, exit status 2: the slow CLI test)."""
    from bertlab.generate import generate_texts, load_generator
    from bertlab.utils.errors import ConfigError

    dm, model, _ = toy
    vocab = len(dm.tokenizer)
    ok = dict(model=model, datamodule=dm, max_len=4)
    assert len(generate_texts(label="positive", n=2, **ok)) == 2
    assert generate_texts(label=1, n=2.0, k="3", seed="5", **ok) == generate_texts(label=1, n=2, k=3, seed=5, **ok)
    cases = [
        (dict(label=7), "label", "unknown label 7"),
        (dict(label="neutral"), "label", "'neutral'"),
        (dict(label=-1), "label", "unknown label -1"),
        (dict(n=0), "n", "got 0"),
        (dict(n=-3), "n", "got -3"),
        (dict(n=1.5), "n", "got 1.5"),
        (dict(n="many"), "n", "'many'"),
        (dict(strategy="topk", k=vocab + 1), "k", f"[1, {vocab}] (the vocabulary size), got {vocab + 1}"),
        (dict(strategy="topk", k=0), "k", "got 0"),
        (dict(strategy="topk", k="five"), "k", "'five'"),
        (dict(strategy="topp", p=1.5), "p", "got 1.5"),
        (dict(strategy="temperature", temperature=0), "temperature", "got 0"),
        (dict(strategy="beam", beam_size=0), "beam_size", "got 0"),
        (dict(max_len=0), "max_len", "got 0"),
        (dict(seed="x"), "seed", "'x'"),
        (dict(strategy="nucleus"), "strategy", "'nucleus'"),
    ]
    for kwargs, key, needle in cases:
        with pytest.raises(ConfigError) as info:
            generate_texts(**{**ok, "label": 1, "n": 1, **kwargs})
        assert info.value.key == key and needle in str(info.value), (kwargs, str(info.value))
    # a checkpoint of another task, and a file that is not there: named in the message
    other = tmp_path / "ner.ckpt"
    torch.save(
        {
            "state_dict": {},
            "bertlab": {"config": {"model": {"_target_": "bertlab.tasks.sequence_labeling.SequenceLabelingModule"}}},
        },
        other,
    )
    with pytest.raises(CheckpointError, match="SequenceLabelingModule checkpoint, not a conditional_generation one"):
        load_generator(str(other))
    with pytest.raises(CheckpointError, match="no such file: .*missing.ckpt"):
        generate_texts(ckpt_path=str(tmp_path / "missing.ckpt"))
    # the value checks come before the checkpoint is read
    with pytest.raises(ConfigError, match="'n'"):
        generate_texts(ckpt_path=str(tmp_path / "missing.ckpt"), n=0)


def test_a_missing_control_classifier_fails_before_training(make_cfg, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a training step ran before the classifier path was checked")

    monkeypatch.setattr(ConditionalGenerationModule, "training_step", no_training)
    missing = tmp_path / "no_classifier.ckpt"
    cfg = make_cfg(["experiment=cond_gen", "debug=fdr", *TINY, f"model.control_classifier_ckpt={missing}"])
    with pytest.raises(CheckpointError, match=r"model.control_classifier_ckpt: .*no such file: .*no_classifier.ckpt"):
        train(cfg)
    assert not (tmp_path / "metrics.json").exists()


def test_label_embedding_is_drawn_like_the_encoder_weights(toy):
    """std 0.02 (the encoder's initializer_range), not nn.Embedding's 1: at std 1 the conditional
    LNs' gamma/beta moved ~0.1 a step under Adam at lr 1e-3 and the model trailed the
    unconditional one in perplexity."""
    _, _, kw = toy
    opt = {"_target_": "torch.optim.Adam", "lr": 1e-3}
    torch.manual_seed(0)
    w = ConditionalGenerationModule(TINY_ENC, opt, **kw).label_embedding.weight  # 2 x 128 draws
    assert 0.015 < float(w.std()) < 0.025 and abs(float(w.mean())) < 0.005
    w = ConditionalGenerationModule(TINY_ENC, opt, cond_init_std=0.5, **kw).label_embedding.weight
    assert 0.4 < float(w.std()) < 0.6
