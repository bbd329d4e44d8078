"""ALBERT unsharing: identical outputs right after, independent layers after a step, plain HF checkpoint."""

from __future__ import annotations

import pytest
import torch
from transformers import AlbertConfig, AlbertForMaskedLM, AlbertModel, BertConfig, BertModel

from bertlab.nn.albert import is_unshared, unshare_albert
from bertlab.utils.errors import ConfigError


def tiny_config(**kw) -> AlbertConfig:
    base = dict(
        vocab_size=50,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return AlbertConfig(**(base | kw))


def _ids():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 50, (2, 7), generator=g), torch.tensor([[1] * 7, [1] * 5 + [0] * 2])


def test_unsharing_keeps_outputs_and_makes_layers_independent():
    torch.manual_seed(0)
    shared = AlbertModel(tiny_config(), add_pooling_layer=False).eval()
    ids, mask = _ids()
    before = shared(input_ids=ids, attention_mask=mask).last_hidden_state
    block = {k: v.clone() for k, v in shared.encoder.albert_layer_groups[0].state_dict().items()}
    emb = shared.embeddings.word_embeddings.weight.clone()
    model = unshare_albert(shared)
    assert model is shared and is_unshared(model)
    assert model.config.num_hidden_groups == 3 and len(model.encoder.albert_layer_groups) == 3
    for group in model.encoder.albert_layer_groups:  # every layer starts as the shared block
        for k, v in group.state_dict().items():
            torch.testing.assert_close(v, block[k], rtol=0, atol=0)
    # separate storage, factorised embedding kept
    ptrs = {g.albert_layers[0].ffn.weight.data_ptr() for g in model.encoder.albert_layer_groups}
    assert len(ptrs) == 3
    assert model.embeddings.word_embeddings.weight.shape == (50, 8)
    torch.testing.assert_close(model.embeddings.word_embeddings.weight, emb, rtol=0, atol=0)
    after = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(input_ids=ids, attention_mask=mask).last_hidden_state.pow(2).mean().backward()
    opt.step()
    w = [g.albert_layers[0].ffn.weight.detach() for g in model.encoder.albert_layer_groups]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    # the shared model has 3x fewer block parameters
    n_shared = sum(
        p.numel() for p in AlbertModel(tiny_config(), add_pooling_layer=False).encoder.albert_layer_groups.parameters()
    )
    n_unshared = sum(p.numel() for p in model.encoder.albert_layer_groups.parameters())
    assert n_unshared == 3 * n_shared


def test_unshared_model_round_trips_as_a_plain_hf_checkpoint(tmp_path):
    torch.manual_seed(1)
    full = AlbertForMaskedLM(tiny_config())
    unshare_albert(full)  # a head model: its .albert is unshared, the config updated
    assert full.config.num_hidden_groups == 3 and full.albert.config.num_hidden_groups == 3
    with torch.no_grad():  # make the layers differ so that a wrong load would show
        for i, g in enumerate(full.albert.encoder.albert_layer_groups):
            g.albert_layers[0].ffn.bias.add_(i)
    full.eval()
    full.save_pretrained(tmp_path / "ckpt")
    loaded = AlbertForMaskedLM.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config.num_hidden_groups == 3 and len(loaded.albert.encoder.albert_layer_groups) == 3
    ids, mask = _ids()
    torch.testing.assert_close(
        loaded(input_ids=ids, attention_mask=mask).logits,
        full(input_ids=ids, attention_mask=mask).logits,
        rtol=0,
        atol=1e-6,
    )
    base = AlbertModel.from_pretrained(tmp_path / "ckpt", add_pooling_layer=False).eval()
    torch.testing.assert_close(
        base(input_ids=ids).last_hidden_state, full.albert(input_ids=ids).last_hidden_state, rtol=0, atol=1e-6
    )


def test_unsharing_is_idempotent_and_follows_hf_grouping():
    torch.manual_seed(2)
    model = AlbertModel(tiny_config(num_hidden_layers=4, num_hidden_groups=2), add_pooling_layer=False).eval()
    ids, mask = _ids()
    before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    g0 = model.encoder.albert_layer_groups[0].albert_layers[0].ffn.weight.clone()
    g1 = model.encoder.albert_layer_groups[1].albert_layers[0].ffn.weight.clone()
    unshare_albert(model)
    got = [g.albert_layers[0].ffn.weight for g in model.encoder.albert_layer_groups]
    for w, ref in zip(got, [g0, g0, g1, g1]):  # layers 0,1 used group 0; layers 2,3 group 1
        torch.testing.assert_close(w, ref, rtol=0, atol=0)
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, before, rtol=0, atol=1e-6)
    groups = model.encoder.albert_layer_groups
    assert unshare_albert(model).encoder.albert_layer_groups is groups


def test_unsharing_a_truncated_albert_gives_k_layers():
    model = AlbertModel(tiny_config(num_hidden_layers=6), add_pooling_layer=False)
    model.config.num_hidden_layers = 2  # what encoders._truncate_layers does for num_layers=2
    unshare_albert(model)
    assert len(model.encoder.albert_layer_groups) == 2 and model.config.num_hidden_groups == 2


def test_non_albert_is_one_clear_error():
    bert = BertModel(
        BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    )
    with pytest.raises(ConfigError, match="encoder.albert_unshared.*ALBERT.*BertModel"):
        unshare_albert(bert)
