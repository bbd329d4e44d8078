"""Sequence labeling: what the transitions add (issue 17). Evaluation also scores the
emissions alone (argmax per token); the CRF mechanism callback records the difference."""

from __future__ import annotations

import csv

import pytest
import torch

from bertlab.tasks.sequence_labeling import score_tagging
from bertlab.train import train

TINY = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_chars=20000",
    "data.max_eval_sentences=30",
    "callbacks.rich_progress_bar=null",
    "trainer.max_steps=6",
    "trainer.max_epochs=1",
    "trainer.val_check_interval=3",
    "trainer.num_sanity_val_steps=0",
    "test=false",
    "threads=1",
]


def test_emissions_only_f1_is_the_argmax_decode_and_the_mechanism_records_it(make_cfg, tmp_path):
    cfg = make_cfg(TINY)
    metrics, objs = train(cfg)
    model, dm = objs["model"], objs["datamodule"]
    val = model.last_metrics["val"]
    assert {"f1_emissions_only", "precision_emissions_only", "recall_emissions_only"} <= set(val)
    # the same number by hand: argmax of the emissions of the final weights (the last step was validated)
    model.eval()
    preds, top2 = {}, []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            em = model.emissions(batch)
            top2.append(em.topk(2, dim=-1).values[batch["attention_mask"].bool()])  # the real tokens only
            for i, a, m in zip(batch["index"].tolist(), em.argmax(-1), batch["attention_mask"]):
                preds[i] = a[m].tolist()
    by_hand, _ = score_tagging(dm.eval_data("val"), preds)
    assert val["f1_emissions_only"] == pytest.approx(by_hand["f1"])
    # the mechanism CSV: one row per validation, transitions_add = f1 - f1_emissions_only
    with open(f"{cfg.paths.output_dir}/mechanism/mechanism.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [3, 6]
    last = rows[-1]
    assert float(last["transitions_add"]) == pytest.approx(val["f1"] - val["f1_emissions_only"])
    assert float(last["transition_grad_norm"]) > 0 and float(last["emission_grad_norm"]) > 0
    # the emission margin (post 1): mean top score and mean top - second over the masked tokens
    top2 = torch.cat(top2)
    assert float(last["emission_top"]) == pytest.approx(float(top2[:, 0].mean()), rel=1e-5)
    assert float(last["emission_margin"]) == pytest.approx(float((top2[:, 0] - top2[:, 1]).mean()), rel=1e-5)


def test_softmax_head_has_no_emissions_only_score(make_cfg):
    cfg = make_cfg([*TINY[1:], "experiment=cws_softmax", "trainer.max_steps=3"])
    _, objs = train(cfg)
    assert "f1_emissions_only" not in objs["model"].last_metrics["val"]


def test_test_every_epoch_scores_the_test_split_after_each_epoch_without_selecting_on_it(make_cfg):
    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    cfg = make_cfg(
        [
            *overrides,
            "data.max_train_chars=4000",
            "trainer.max_epochs=2",
            "trainer.max_steps=-1",
            "test_every_epoch=true",
        ]
    )
    metrics, objs = train(cfg)
    model, dm, trainer = objs["model"], objs["datamodule"], objs["trainer"]
    with open(f"{cfg.paths.output_dir}/test_epoch.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the last row is the test score of the final weights, as a test run computes it
    assert float(rows[-1]["f1"]) == pytest.approx(model.evaluate_now("test", dm.test_dataloader())["f1"])
    assert not any(k.startswith("test_epoch/") for k in trainer.callback_metrics)  # never selectable
    assert trainer.loggers, "the run has a logger (CSV by default)"
    with open(trainer.loggers[0].log_dir + "/metrics.csv", encoding="utf-8") as f:
        assert "test_epoch/f1" in f.readline()
