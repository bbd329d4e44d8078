"""Sentence classification end to end: fast_dev_run of the experiments (tiny ALBERT saved to
tmp_path standing in for data/pretrained/albert_small), options from config, a short real
run whose checkpoint predicts labels through load_run, and one-line config errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import AlbertConfig, AlbertForMaskedLM

from bertlab.train import train
from bertlab.utils.errors import ConfigError

TINY_BERT = [
    "encoder.pretrained=null",
    "encoder.model_type=bert",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
]


@pytest.fixture(scope="module")
def tiny_albert(tmp_path_factory) -> str:
    """A tiny shared ALBERT checkpoint (full bert-base-chinese vocab, 3 layers, 1 group)."""
    path = tmp_path_factory.mktemp("albert") / "albert_tiny"
    torch.manual_seed(0)
    cfg = AlbertConfig(
        vocab_size=21128,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    AlbertForMaskedLM(cfg).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("experiment,unshared", [("sentiment_cls", False), ("albert_unshared", True)])
def test_fast_dev_run_of_the_experiments(make_cfg, tiny_albert, experiment, unshared):
    cfg = make_cfg(
        [
            f"experiment={experiment}",
            f"encoder.pretrained={tiny_albert}",
            "debug=fdr",
            "callbacks.rich_progress_bar=null",
        ]
    )
    metrics, objs = train(cfg)
    model = objs["model"]
    assert "train/loss" in metrics and 0.0 <= metrics["val/acc"] <= 1.0 and "test" in metrics
    groups = model.encoder.encoder.albert_layer_groups
    assert len(groups) == (3 if unshared else 1) and model.encoder.config.num_hidden_groups == len(groups)
    assert all(m.training for m in model.encoder.modules()) or not model.training
    assert cfg.scheduler.type == "piecewise_linear"
    if unshared:
        assert dict(cfg.scheduler.schedule) == {100: 1.0, 400: 0.1} and cfg.data.max_train_examples == 5000
    else:
        assert dict(cfg.scheduler.schedule) == {1000: 1.0, 2000: 0.1}


def test_fast_dev_run_with_init_and_each_regulariser(tmp_path):
    from tests.conftest import compose_cfg

    for kind in ("som", "soft", "biggan"):  # one run folder each: a new run never trains over another
        cfg = compose_cfg(
            tmp_path / kind,
            [
                "experiment=sentiment_cls",
                *TINY_BERT,
                "debug=fdr",
                "model.init=dual",
                f"model.orthogonality.kind={kind}",
                "model.orthogonality.weight=0.01",
                "model.orthogonality.patterns=[*.intermediate.dense,classifier]",
            ],
        )
        metrics, objs = train(cfg)
        assert metrics["train/orthogonality"] > 0, kind
        assert sorted(objs["model"].orthogonality.layers) == [
            "classifier",
            "encoder.encoder.layer.0.intermediate.dense",
        ]


def _module(**kw):
    from tests.conftest import ROOT

    from bertlab.tasks.classification import ClassificationModule

    enc = {
        "model_type": "bert",
        "pretrained": None,
        "vocab_file": str(ROOT / "data/vocab/bert-base-chinese/vocab.txt"),
        "config_file": str(ROOT / "data/vocab/bert-base-chinese/bert_config.json"),
        "num_layers": 1,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    } | kw.pop("encoder", {})
    torch.manual_seed(0)
    return ClassificationModule(enc, {"lr": 1e-3}, dropout=0.0, **kw)


def test_init_applies_to_fresh_weights_and_zero_weight_changes_nothing():
    batch = {
        "input_ids": torch.randint(5, 500, (4, 9)),
        "attention_mask": torch.ones(4, 9, dtype=torch.bool),
        "label": torch.tensor([0, 1, 1, 0]),
    }
    plain = _module()
    zero = _module(orthogonality={"kind": "som", "patterns": ["*.intermediate.dense"], "weight": 0.0})
    on = _module(orthogonality={"kind": "som", "patterns": ["*.intermediate.dense"], "weight": 0.5})
    losses = [m.training_step(batch, 0) for m in (plain, zero, on)]
    assert torch.equal(losses[0], losses[1]) and losses[2] > losses[0]
    w = _module(init={"*.intermediate.dense": "orthogonal"}).encoder.encoder.layer[0].intermediate.dense.weight
    torch.testing.assert_close(w.T @ w, torch.eye(32), atol=1e-5, rtol=0)  # [64, 32]: orthonormal columns
    assert plain.encoder.encoder.layer[0].intermediate.dense.weight.std().item() == pytest.approx(0.02, rel=0.2)


def test_bad_options_are_one_clear_error():
    with pytest.raises(ConfigError, match="encoder.albert_unshared.*ALBERT"):
        _module(encoder={"albert_unshared": True})
    with pytest.raises(ConfigError, match=r"model.init'.*unknown init 'glorot'"):
        _module(init="glorot")
    with pytest.raises(ConfigError, match=r"model.orthogonality.patterns'.*'ffn' matches no Linear"):
        _module(orthogonality={"kind": "soft", "patterns": ["ffn"], "weight": 1.0})
    with pytest.raises(ConfigError, match=r"model.orthogonality.lambda3'"):
        _module(orthogonality={"kind": "soft", "lambda3": 1.0})


@pytest.mark.slow
def test_a_short_run_learns_and_its_checkpoint_predicts(make_cfg, tmp_path):
    from bertlab.predict import predict_texts
    from bertlab.runs import load_run

    cfg = make_cfg(
        [
            "experiment=sentiment_cls",
            *TINY_BERT,
            "encoder.hidden_size=64",
            "encoder.intermediate_size=128",
            "data.trim_vocab=corpus",
            "data.max_train_examples=2000",
            "data.max_len=64",
            "data.max_eval_examples=400",
            "scheduler=constant",
            "optimizer.lr=2e-3",
            "trainer.max_epochs=2",
            "seed=0",
        ]
    )
    metrics, objs = train(cfg)
    val = objs["datamodule"].labels["val"]
    majority = max(sum(val), len(val) - sum(val)) / len(val)
    assert metrics["val/acc"] > majority + 0.1, (metrics["val/acc"], majority)
    history = objs["model"].history
    assert [h["epoch"] for h in history] == [0, 1] and all(h["train/epoch_seconds"] > 0 for h in history)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test"]["n_examples"] == 400
    model, dm, _ = load_run(metrics["test_checkpoint"])
    texts = objs["datamodule"].texts["test"][:40]
    recs = predict_texts(model, dm, texts)
    preds = [r["label"] for r in recs]
    want = objs["model"].last_outputs["test"][:40]  # the test run used the same (best) checkpoint
    assert preds == want and [r["text"] for r in recs] == texts
    assert Path(saved["prediction_files"][0]).is_file()


def test_fast_dev_run_of_the_orthogonality_experiment(make_cfg):
    cfg = make_cfg(["experiment=orthogonality_sentiment", *TINY_BERT[2:], "debug=fdr"])
    metrics, objs = train(cfg)
    pen = objs["model"].orthogonality
    assert (
        pen.kind == "som" and pen.weight == 1e-8 and len(pen.layers) == 3
    )  # layer 0: intermediate, attention.output and output dense
    assert metrics["train/orthogonality"] > 0
    # post 3's kernel statistic is tracked on the same layers (experiment's kernel_geometry callback)
    from bertlab.callbacks.kernel_geometry import KernelGeometry

    geo = next(c for c in objs["trainer"].callbacks if isinstance(c, KernelGeometry))
    assert geo.steps[0] == 0 and len(geo.values) == 3
    assert os.path.isfile(os.path.join(geo.output_dir, "gram_deviation.csv"))
    # its parts reach metrics.json; output.dense ([hidden, intermediate], wide) is measured on W W^T
    assert {"geometry/final_gram_diag_mean", "geometry/final_gram_offdiag_cos2_mean"} <= set(metrics)
    assert metrics["geometry/final_n_rows_gram"] == 1.0 and "geometry/init_filter_cos2_mean" in metrics
