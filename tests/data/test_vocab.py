from __future__ import annotations

import pytest
import torch

from bertlab.data.tokenization import CharTokenizer, load_vocab_tokens
from bertlab.data.vocab import trim_vocab
from bertlab.nn.encoders import build_encoder
from bertlab.utils.errors import ConfigError

VOCAB = "data/vocab/bert-base-chinese/vocab.txt"


def test_simplified_is_bert4keras_rule():
    tokens = load_vocab_tokens(VOCAB)
    keep = trim_vocab(tokens, "simplified")
    kept = [tokens[i] for i in keep]
    assert kept[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    assert "##的" not in kept and "##，" not in kept and "[unused1]" not in kept
    assert "的" in kept and "##ing" in kept and "，" in kept
    assert 13000 < len(keep) < 14500  # bert4keras reports ~13.6k for this vocab


def test_corpus_keeps_seen_tokens_and_every_cjk_char():
    tokens = load_vocab_tokens(VOCAB)
    tok = CharTokenizer(VOCAB)
    used = {tok.char_id(c) for c in "hello１２３"}
    keep = trim_vocab(tokens, "corpus", used)
    small = CharTokenizer(VOCAB, keep_ids=keep)
    assert small.encode("鑫").ids[1] != small.unk_id  # an unseen CJK char is still known
    assert small.encode("h").ids[1] != small.unk_id and small.encode("q").ids[1] == small.unk_id
    assert len(small) < len(tok)
    with pytest.raises(ConfigError, match="data.trim_vocab"):
        trim_vocab(tokens, "nope")


def test_loaded_checkpoint_is_sliced_consistently(tmp_path, make_cfg):
    from transformers import BertForMaskedLM

    cfg = dict(make_cfg().encoder) | {
        "num_layers": 1,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    enc, _ = build_encoder(cfg)
    full = BertForMaskedLM(enc.config)
    full.save_pretrained(tmp_path / "ckpt")
    keep = [0, 100, 101, 102, 103, 2769, 4263]
    small_enc, head = build_encoder(cfg | {"pretrained": str(tmp_path / "ckpt")}, with_mlm_head=True, keep_ids=keep)
    torch.testing.assert_close(
        small_enc.embeddings.word_embeddings.weight, full.bert.embeddings.word_embeddings.weight[keep]
    )
    ids_new = torch.tensor([[2, 5, 6, 3]])
    ids_old = torch.tensor([[keep[i] for i in ids_new[0]]])
    full.eval()
    small_enc.eval()
    head.eval()
    logits_new = head(small_enc(input_ids=ids_new).last_hidden_state)
    logits_old = full(input_ids=ids_old).logits
    assert logits_new.shape[-1] == len(keep)
    torch.testing.assert_close(logits_new, logits_old[..., keep])
