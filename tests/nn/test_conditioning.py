"""condition_layer_norms: every LayerNorm swapped, identical outputs at init, condition per
forward; causal_attention_mask: no position sees the future."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from tests.conftest import ROOT
from torch import nn

from bertlab.nn.conditioning import (
    ConditionContext,
    ContextLayerNorm,
    causal_attention_mask,
    condition_layer_norms,
    conditional_norms,
)
from bertlab.nn.encoders import build_encoder

VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")
CONFIG = str(ROOT / "data/vocab/bert-base-chinese/bert_config.json")


def tiny(model_type="bert", layers=2, vocab=50):
    cfg = dict(
        model_type=model_type,
        vocab_file=VOCAB,
        config_file=CONFIG if model_type == "bert" else None,
        num_layers=layers,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    if model_type == "albert":
        cfg["embedding_size"] = 16
    torch.manual_seed(0)
    enc, head = build_encoder(cfg, vocab_size=vocab, with_mlm_head=True)
    return enc.eval(), head.eval()


def run(enc, head, ids, mask):
    return head(enc(input_ids=ids, attention_mask=mask).last_hidden_state)


@pytest.mark.parametrize("model_type", ["bert", "albert"])
def test_swapped_model_with_zero_init_equals_the_plain_model_for_any_condition(model_type):
    enc, head = tiny(model_type)
    ids = torch.randint(5, 50, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        before = run(enc, head, ids, mask)
    n_ln = len({id(m) for r in (enc, head) for m in r.modules() if isinstance(m, nn.LayerNorm)})
    ctx = condition_layer_norms([enc, head], cond_dim=8, hidden_units=4, act="relu")
    assert not any(type(m) is nn.LayerNorm for r in (enc, head) for m in r.modules())
    assert len({id(m) for _, m in conditional_norms([enc, head])}) == n_ln
    for cond in (torch.zeros(3, 8), torch.randn(3, 8) * 10):
        with torch.no_grad(), ctx.use(cond):
            after = run(enc, head, ids, mask)
        assert torch.equal(after, before)


def test_every_bert_layer_norm_is_conditioned():
    enc, head = tiny("bert", layers=3)
    condition_layer_norms([enc, head], cond_dim=8)
    names = {
        ("enc." if i == 0 else "head.") + n
        for i, r in enumerate((enc, head))
        for n, m in r.named_modules()
        if isinstance(m, ContextLayerNorm)
    }
    want = {"enc.embeddings.LayerNorm", "head.predictions.transform.LayerNorm"}
    for i in range(3):
        want |= {f"enc.encoder.layer.{i}.attention.output.LayerNorm", f"enc.encoder.layer.{i}.output.LayerNorm"}
    assert names == want
    # pretrained gamma/beta are kept under their old names; the new dense layers start at zero
    sd = enc.state_dict()
    assert "embeddings.LayerNorm.weight" in sd and "embeddings.LayerNorm.gamma_dense.weight" in sd
    assert float(sd["embeddings.LayerNorm.gamma_dense.weight"].abs().sum()) == 0.0


def test_condition_changes_outputs_once_the_dense_layers_are_nonzero():
    enc, head = tiny()
    ctx = condition_layer_norms([enc, head], cond_dim=4)
    for _, m in conditional_norms([enc, head]):
        nn.init.normal_(m.gamma_dense.weight, std=0.1)
    ids = torch.randint(5, 50, (2, 5))
    mask = torch.ones(2, 5)
    with torch.no_grad():
        with ctx.use(torch.tensor([[1.0, 0, 0, 0]] * 2)):
            a = run(enc, head, ids, mask)
        with ctx.use(torch.tensor([[0.0, 1, 0, 0]] * 2)):
            b = run(enc, head, ids, mask)
    assert (a - b).abs().max() > 1e-3


def test_no_condition_outside_the_block_and_no_leak_between_threads():
    enc, head = tiny(layers=1)
    ctx = condition_layer_norms([enc, head], cond_dim=4)
    ids = torch.randint(5, 50, (1, 4))
    with pytest.raises(RuntimeError, match="without a condition"):
        run(enc, head, ids, torch.ones(1, 4))
    seen = []
    with ctx.use(torch.zeros(1, 4)):
        t = threading.Thread(target=lambda: seen.append(getattr(ctx._local, "cond", None)))
        t.start()
        t.join()
        assert ctx.get() is not None
    assert seen == [None]
    with pytest.raises(RuntimeError):
        ctx.get()


def test_deepcopy_keeps_one_shared_context():
    enc, head = tiny(layers=1)
    condition_layer_norms([enc, head], cond_dim=4)
    enc2, head2 = copy.deepcopy((enc, head))
    ctxs = {id(m.context) for _, m in conditional_norms([enc2, head2])}
    assert len(ctxs) == 1 and isinstance(next(m for _, m in conditional_norms(enc2)).context, ConditionContext)
    with next(m for _, m in conditional_norms(enc2)).context.use(torch.zeros(1, 4)):
        run(enc2, head2, torch.randint(5, 50, (1, 3)), torch.ones(1, 3))


def test_no_layer_norm_is_an_error():
    with pytest.raises(ValueError, match="no nn.LayerNorm"):
        condition_layer_norms(nn.Linear(2, 2), cond_dim=2)


def test_causal_mask_values():
    m = causal_attention_mask(torch.tensor([[1, 1, 0]]))
    neg = torch.finfo(torch.float32).min
    assert m.shape == (1, 1, 3, 3)
    assert m[0, 0].tolist() == [[0, neg, neg], [0, 0, neg], [0, 0, neg]]


@pytest.mark.parametrize("model_type", ["bert", "albert"])
def test_causal_mask_an_earlier_position_never_sees_a_later_token(model_type):
    enc, head = tiny(model_type)
    torch.manual_seed(1)
    ids = torch.randint(5, 50, (2, 9))
    pad = torch.ones(2, 9, dtype=torch.long)
    pad[1, 7:] = 0
    mask = causal_attention_mask(pad)
    with torch.no_grad():
        base = run(enc, head, ids, mask)
        for t in range(8):
            changed = ids.clone()
            changed[:, t + 1 :] = torch.randint(5, 50, changed[:, t + 1 :].shape)
            out = run(enc, head, changed, mask)
            assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5), t
        # and without the causal mask the future does leak (the test can fail)
        bi = run(enc, head, ids, pad)
        changed = ids.clone()
        changed[:, 5:] = (changed[:, 5:] + 1) % 45 + 5
        assert (run(enc, head, changed, pad)[:, :5] - bi[:, :5]).abs().max() > 1e-4
