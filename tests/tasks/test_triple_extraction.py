"""Triple extraction model: the pre-LN hook, zero-initialised CLN, the loss against a hand
computation, decoding on crafted probabilities, batched extraction, fast_dev_run, predict."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bertlab.optim import build_param_groups
from bertlab.tasks.triple_extraction import (
    PreLayerNormCapture,
    TripleExtractionModule,
    decode_objects,
    decode_subjects,
    find_output_layer_norm,
    triple_loss,
)
from bertlab.train import train

ROOT = Path(__file__).resolve().parents[2]
VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")
TINY_ENC = {
    "model_type": "bert",
    "pretrained": None,
    "vocab_file": VOCAB,
    "config_file": None,
    "num_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
OPT = {"_target_": "torch.optim.Adam", "lr": 1e-3}
TINY = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_records=64",
    "data.max_eval_records=16",
    "data.batch_size=16",
    "callbacks.rich_progress_bar=null",
]


def _model(**kw) -> TripleExtractionModule:
    torch.manual_seed(0)
    args = dict(encoder=TINY_ENC, optimizer=OPT, num_predicates=3, vocab_keep_ids=list(range(200)))
    args.update(kw)
    return TripleExtractionModule(**args).eval()


def _ids(bsz=2, length=7):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 200, (bsz, length), generator=g)
    mask = torch.ones(bsz, length, dtype=torch.bool)
    mask[1, -2:] = False
    ids[1, -2:] = 0
    return ids, mask


# ----------------------------------------------------------------------------- pre-LN hook
@pytest.mark.parametrize("model_type", ["bert", "albert"])
def test_pre_ln_hook_then_that_layer_norm_reproduces_the_output(model_type):
    from bertlab.nn.encoders import build_encoder

    cfg = dict(TINY_ENC, model_type=model_type, embedding_size=16)
    torch.manual_seed(0)
    enc, _ = build_encoder(cfg, vocab_size=200)
    enc.eval()
    ln = find_output_layer_norm(enc)
    cap = PreLayerNormCapture(ln)
    ids, mask = _ids()
    out = enc(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    pre = cap.pop()
    with pytest.raises(RuntimeError):  # popped: a stale tensor is never reused
        cap.pop()
    torch.testing.assert_close(ln(pre), out, rtol=0, atol=1e-6)
    assert not torch.allclose(pre, out, atol=1e-3)  # it is really the tensor before the norm


def test_object_input_choice_uses_pre_ln_or_output():
    ids, mask = _ids()
    pre_model = _model(object_input="pre_ln")
    out_model = _model(object_input="output")
    out, obj = pre_model.encode(ids, mask)
    torch.testing.assert_close(find_output_layer_norm(pre_model.encoder)(obj), out, rtol=0, atol=1e-6)
    out2, obj2 = out_model.encode(ids, mask)
    assert obj2 is out2


# ----------------------------------------------------------------------------- CLN at init
def test_zero_initialised_cln_gives_the_plain_layer_norm_object_head():
    model = _model()
    ids, mask = _ids()
    _, obj = model.encode(ids, mask)
    a = model.object_probs(obj, torch.tensor([[1, 2], [3, 3]]))
    b = model.object_probs(obj, torch.tensor([[5, 6], [1, 4]]))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    plain = torch.sigmoid(model.object_head(F.layer_norm(obj, (obj.size(-1),), eps=1e-12))) ** 4
    torch.testing.assert_close(a, plain.view(2, 7, 3, 2), rtol=0, atol=1e-7)
    # subject head: sigmoid^2
    out, _ = model.encode(ids, mask)
    torch.testing.assert_close(model.subject_probs(out), torch.sigmoid(model.subject_head(out)) ** 2)


def test_cln_condition_matters_after_training_its_projections():
    model = _model()
    with torch.no_grad():
        model.object_cln.gamma_dense.weight.normal_()
    ids, mask = _ids()
    _, obj = model.encode(ids, mask)
    a = model.object_probs(obj, torch.tensor([[1, 2], [3, 3]]))
    b = model.object_probs(obj, torch.tensor([[5, 6], [1, 4]]))
    assert not torch.allclose(a, b)


def test_heads_and_cln_can_get_their_own_learning_rate():
    groups = build_param_groups(
        _model().named_parameters(), 1e-3, {"object_cln": 10, "subject_head": 5, "object_head": 5}
    )
    by_name = {g["name"]: g for g in groups}
    assert by_name["object_cln"]["lr"] == pytest.approx(1e-2) and len(by_name["object_cln"]["params"]) == 4
    assert by_name["subject_head"]["lr"] == pytest.approx(5e-3) and len(by_name["object_head"]["params"]) == 2


# ----------------------------------------------------------------------------- loss
def test_loss_on_a_tiny_batch_against_a_hand_computation():
    # B=1, T=3 (last token padded), P=2
    sp = torch.tensor([[[0.9, 0.2], [0.1, 0.8], [0.5, 0.5]]])
    sl = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    op = torch.tensor([[[[0.7, 0.1], [0.2, 0.3]], [[0.4, 0.6], [0.0, 1.0]], [[0.9, 0.9], [0.9, 0.9]]]])
    ol = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    mask = torch.tensor([[True, True, False]])

    def bce(p, y):
        p = min(max(p, 1e-7), 1 - 1e-7)
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    sub = ((bce(0.9, 1) + bce(0.2, 0)) / 2 + (bce(0.1, 0) + bce(0.8, 1)) / 2) / 2
    obj_t0 = (bce(0.7, 1) + bce(0.1, 0)) / 2 + (bce(0.2, 0) + bce(0.3, 0)) / 2
    obj_t1 = (bce(0.4, 0) + bce(0.6, 1)) / 2 + (bce(0.0, 0) + bce(1.0, 1)) / 2
    obj = (obj_t0 + obj_t1) / 2
    got_sub, got_obj = triple_loss(sp, op, sl, ol, mask)
    assert got_sub.item() == pytest.approx(sub, rel=1e-5)
    assert got_obj.item() == pytest.approx(obj, rel=1e-5)


def test_training_step_backpropagates_into_encoder_heads_and_cln():
    model = _model().train()
    ids, mask = _ids()
    T, P = ids.size(1), 3
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "subject_ids": torch.tensor([[1, 2], [2, 2]]),
        "subject_labels": torch.zeros(2, T, 2),
        "object_labels": torch.zeros(2, T, P, 2),
    }
    batch["subject_labels"][0, 1, 0] = batch["subject_labels"][0, 2, 1] = 1
    batch["object_labels"][0, 4, 1, 0] = batch["object_labels"][0, 5, 1, 1] = 1
    sub, obj = model.losses(batch)
    (sub + obj).backward()
    for name in (
        "subject_head.weight",
        "object_head.weight",
        "object_cln.gamma_dense.weight",
        "object_cln.beta_dense.weight",
        "encoder.embeddings.word_embeddings.weight",
    ):
        assert dict(model.named_parameters())[name].grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------- decoding
def test_decode_subjects_nearest_end_overlaps_and_boundaries():
    start = np.array([0.0, 0.9, 0.61, 0.6, 0.0, 0.7, 0.0, 0.99])
    end = np.array([0.9, 0.0, 0.0, 0.51, 0.5, 0.0, 0.8, 0.0])
    # starts > 0.6: 1, 2, 5, 7 (0.6 at 3 is not > 0.6); ends > 0.5: 0 (outside lo), 3, 6 (0.5 at 4 is not)
    got = decode_subjects(start, end, 1, 8)
    assert got == [(1, 3), (2, 3), (5, 6)]  # overlapping subjects share an end; 7 has no end after it
    assert decode_subjects(start, end, 1, 8, t_start=0.95, t_end=0.9) == []
    # an end at the start position itself is allowed (one-character subject)
    assert decode_subjects(np.array([0, 0.9, 0]), np.array([0, 0.9, 0.9]), 1, 3) == [(1, 1)]
    # positions outside [lo, hi) ([CLS], [SEP], padding) are never used
    assert decode_subjects(np.array([0.9, 0, 0.9]), np.array([0, 0, 0.9]), 1, 2) == []


def test_decode_objects_several_objects_same_object_two_predicates_thresholds():
    T, P = 9, 3
    probs = np.zeros((T, P, 2))
    # one subject, several objects: predicate 0 at [1..2] and [5..6]
    probs[1, 0, 0], probs[2, 0, 1] = 0.9, 0.9
    probs[5, 0, 0], probs[6, 0, 1] = 0.7, 0.6
    # the same object [3..4] under predicates 1 and 2
    probs[3, 1, 0], probs[4, 1, 1] = 0.8, 0.8
    probs[3, 2, 0], probs[4, 2, 1] = 0.65, 0.55
    # an end of ANOTHER predicate closer than the own one is skipped: start 7 pred 1, end 7 pred 2, end 8 pred 1
    probs[7, 1, 0], probs[7, 2, 1], probs[8, 1, 1] = 0.9, 0.9, 0.9
    # boundary values: start exactly 0.6, end exactly 0.5 do not count
    probs[2, 2, 0] = 0.6
    probs[6, 1, 1] = 0.5
    got = decode_objects(probs, 1, T)
    assert got == [(1, 2, 0), (3, 4, 1), (3, 4, 2), (5, 6, 0), (7, 8, 1)]
    # objects whose end is at position hi or beyond are not produced
    assert (7, 8, 1) not in decode_objects(probs, 1, 8)


def test_extract_batches_candidate_subjects_of_several_texts(monkeypatch):
    model = _model(max_subject_batch=2)
    ids, mask = _ids(bsz=2, length=7)  # text 1 has 5 real tokens
    sub = torch.zeros(2, 7, 2)
    sub[0, 1, 0] = sub[0, 2, 1] = 0.9  # text 0: subject (1, 2)
    sub[0, 3, 0] = sub[0, 3, 1] = 0.9  # text 0: subject (3, 3)
    sub[1, 1, 0] = sub[1, 2, 1] = 0.9  # text 1: subject (1, 2)
    sub[1, 3, 0] = sub[1, 3, 1] = 0.9  # text 1: subject (3, 3); its object would be on [SEP] (4)
    sub[1, 5, 0] = sub[1, 5, 1] = 0.9  # padding position: ignored
    monkeypatch.setattr(model, "subject_probs", lambda hidden: sub)
    seen = []

    def fake_objects(obj_hidden, subject_ids):
        seen.append(subject_ids.tolist())
        out = torch.zeros(subject_ids.size(0), 7, 3, 2)
        for k, (s0, s1) in enumerate(subject_ids.tolist()):
            out[k, s1 + 1, (s0 + s1) % 3, 0] = out[k, s1 + 1, (s0 + s1) % 3, 1] = 0.9
        return out

    monkeypatch.setattr(model, "object_probs", fake_objects)
    batch = {"input_ids": ids, "attention_mask": mask, "index": torch.tensor([10, 11])}
    got = model.extract(batch)
    assert seen == [[[1, 2], [3, 3]], [[1, 2], [3, 3]]]  # chunks of max_subject_batch=2 across texts
    assert got == {10: [(1, 2, 0, 3, 3), (3, 3, 0, 4, 4)], 11: [(1, 2, 0, 3, 3)]}


# ----------------------------------------------------------------------------- end to end
def test_fast_dev_run(make_cfg):
    cfg = make_cfg(["experiment=triples", "debug=fdr", *TINY])
    metrics, objs = train(cfg)
    assert "train/loss" in metrics and "f1" in metrics["test"] and "baseline_f1" in metrics["test"]
    assert objs["model"].hparams.num_predicates == 49
    assert any(type(c).__name__ == "EMA" for c in objs["trainer"].callbacks)
    assert metrics["data_stats"]["train_records"] == 64


def test_bad_object_input_and_threshold_keys_are_config_errors():
    from bertlab.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="object_input"):
        _model(object_input="middle")
    with pytest.raises(ConfigError, match="thresholds.subject"):
        _model(thresholds={"subject": 0.5})


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("triples_run")
    cfg = compose_cfg(out, ["experiment=triples", *TINY, "trainer.max_epochs=1", "trainer.limit_train_batches=2"])
    metrics, objs = train(cfg)
    ckpt = metrics["test_checkpoint"]
    assert ckpt and os.path.isfile(ckpt)
    return out, metrics, ckpt


def test_predict_round_trip_offsets_point_at_the_right_characters(tiny_checkpoint):
    from bertlab.predict import predict_texts
    from bertlab.runs import load_run

    out, metrics, ckpt = tiny_checkpoint
    model, dm, _ = load_run(ckpt)
    # every position a candidate: exercises the full span -> offset path on real text
    model.hparams.thresholds = {"subject_start": 0.0, "subject_end": 0.0, "object_start": 0.0, "object_end": 0.0}
    texts = ["周杰伦 唱《七里香》", "Jay Chou!"]
    records = predict_texts(model, dm, texts)
    assert [r["text"] for r in records] == texts
    for text, rec in zip(texts, records):
        assert rec["spo_list"]
        for t in rec["spo_list"]:
            s0, s1 = t["subject_span"]
            o0, o1 = t["object_span"]
            assert text[s0:s1] == t["subject"] and text[o0:o1] == t["object"]
            assert not text[s0].isspace() and not text[s1 - 1].isspace()
            assert t["predicate"] in dm.predicates
    # one-character subjects at every non-space character (nearest end = the start itself)
    subjects = {tuple(t["subject_span"]) for t in records[0]["spo_list"]}
    assert subjects == {(i, i + 1) for i, ch in enumerate(texts[0]) if not ch.isspace()}
    # the saved test predictions exist and are JSON lines
    pred_file = out / "predictions" / "test_triples.jsonl"
    first = json.loads(pred_file.read_text(encoding="utf-8").splitlines()[0])
    assert {"text", "spo_list", "spo_list_pred", "new", "lack"} <= set(first)


def test_predict_cli_prints_json(tiny_checkpoint):
    _, _, ckpt = tiny_checkpoint
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    res = subprocess.run(
        [sys.executable, "-m", "bertlab.predict", f"ckpt_path={ckpt}", "text=《七里香》是周杰伦的歌"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    assert rec["text"] == "《七里香》是周杰伦的歌" and isinstance(rec["spo_list"], list)


def test_checkpoint_weights_are_the_ema_weights(tiny_checkpoint):
    _, _, ckpt = tiny_checkpoint
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = next(v for k, v in saved["callbacks"].items() if k.startswith("EMA"))
    assert state["num_updates"] >= 1
    name = "object_head.weight"
    # warm-up decay after the first update is 0.1 -> EMA differs from the training weights
    assert not torch.equal(saved["state_dict"][name], state["train_weights"][name])
