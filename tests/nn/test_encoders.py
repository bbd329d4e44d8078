from __future__ import annotations

import pytest
import torch

from bertlab.nn.encoders import build_encoder, resolve_vocab_file
from bertlab.utils.errors import CheckpointError, ConfigError

TINY = {"model_type": "bert", "pretrained": None, "num_layers": 3, "hidden_size": 32, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64}


def test_fresh_encoder_has_the_configured_shape(make_cfg):
    cfg = dict(make_cfg().encoder) | TINY
    enc, head = build_encoder(cfg)
    assert head is None
    assert enc.config.vocab_size == 21128 and len(enc.encoder.layer) == 3 and enc.config.hidden_size == 32
    enc2, head2 = build_encoder(cfg, with_mlm_head=True)
    assert head2 is not None


def test_checkpoint_directory_round_trip_and_num_layers(make_cfg, tmp_path):
    cfg = dict(make_cfg().encoder) | TINY
    from transformers import BertForMaskedLM

    enc, _ = build_encoder(cfg)
    full = BertForMaskedLM(enc.config)
    full.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "vocab.txt").write_text(open(cfg["vocab_file"], encoding="utf-8").read(), encoding="utf-8")
    loaded, _ = build_encoder(cfg | {"pretrained": str(tmp_path / "ckpt"), "num_layers": 2})
    assert len(loaded.encoder.layer) == 2 and loaded.config.num_hidden_layers == 2
    torch.testing.assert_close(loaded.encoder.layer[1].output.dense.weight, full.bert.encoder.layer[1].output.dense.weight)
    assert resolve_vocab_file(cfg | {"pretrained": str(tmp_path / "ckpt")}).endswith("ckpt/vocab.txt")
    ids = torch.randint(0, 100, (2, 5))
    full.bert.encoder.layer = full.bert.encoder.layer[:2]
    full.eval()
    loaded.eval()
    torch.testing.assert_close(loaded(input_ids=ids).last_hidden_state, full.bert(input_ids=ids).last_hidden_state)
    with pytest.raises(ConfigError, match="encoder.num_layers"):
        build_encoder(cfg | {"pretrained": str(tmp_path / "ckpt"), "num_layers": 9})
    _, head = build_encoder(cfg | {"pretrained": str(tmp_path / "ckpt")}, with_mlm_head=True)
    torch.testing.assert_close(head.predictions.transform.dense.weight, full.cls.predictions.transform.dense.weight)


def test_missing_checkpoint_path_is_one_clear_error(make_cfg, tmp_path):
    cfg = dict(make_cfg().encoder)
    with pytest.raises(CheckpointError, match="no such directory"):
        build_encoder(cfg | {"pretrained": str(tmp_path / "nope")})
    with pytest.raises(CheckpointError, match="bert-base-chinese"):
        build_encoder(cfg | {"pretrained": "bert-base-chinese"})  # offline, not cached
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(CheckpointError, match="could not be loaded"):
        build_encoder(cfg | {"pretrained": str(tmp_path / "notamodel")})
