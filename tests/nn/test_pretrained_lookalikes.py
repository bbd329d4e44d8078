"""Tiny local checkpoints in the formats of the real Chinese models load through the factory.

- bert-base-chinese: BertForMaskedLM (model.safetensors + pytorch_model.bin era), vocab.txt,
  tokenizer_config.json / tokenizer.json of a BertTokenizer.
- hfl/chinese-roberta-wwm-ext: a BERT architecture (config model_type "bert",
  BertForMaskedLM) under a RoBERTa name, BertTokenizer files.
- voidful/albert_chinese_tiny: AlbertForMaskedLM (embedding 128, hidden 312, 4 layers) with a
  BertTokenizer vocab.txt and NO sentencepiece model.

Each loads with its MLM head; the MLM logits of the factory's encoder + head equal those of
the saved model; the tokenizer files agree with the factory's vocab; trimmed loading slices
embedding and head consistently.
"""

from __future__ import annotations

import json

import pytest
import torch

from bertlab.data.tokenization import CharTokenizer
from bertlab.nn.encoders import build_encoder, resolve_vocab_file

VOCAB = "data/vocab/bert-base-chinese/vocab.txt"
N_VOCAB = 21128


def _bert(hidden=32, layers=2):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(
        vocab_size=N_VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
    )
    return BertForMaskedLM(cfg)


def _albert():
    from transformers import AlbertConfig, AlbertForMaskedLM

    # albert_chinese_tiny's shape, at reduced width: factorised 128-d embedding, one shared block
    cfg = AlbertConfig(
        vocab_size=N_VOCAB,
        embedding_size=128,
        hidden_size=48,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=96,
        hidden_act="gelu",
        max_position_embeddings=512,
    )
    return AlbertForMaskedLM(cfg)


def _tokenizer_files(path, name):
    import shutil

    from transformers import BertTokenizer

    src = path.parent / f"{path.name}_vocab_only"
    src.mkdir(parents=True)
    shutil.copy(VOCAB, src / "vocab.txt")
    tok = BertTokenizer.from_pretrained(str(src), do_lower_case=True)
    tok.save_pretrained(path)  # transformers 5: tokenizer.json + tokenizer_config.json
    shutil.copy(VOCAB, path / "vocab.txt")  # the real checkpoints ship their vocab.txt too
    conf = json.loads((path / "tokenizer_config.json").read_text())
    conf["tokenizer_class"] = "BertTokenizer"
    conf["name_or_path"] = name
    (path / "tokenizer_config.json").write_text(json.dumps(conf))


def _make(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "bert-base-chinese":
        model, path = _bert(), tmp_path / "bert-base-chinese"
    elif kind == "chinese-roberta-wwm-ext":
        model, path = _bert(hidden=32, layers=3), tmp_path / "hfl" / "chinese-roberta-wwm-ext"
    else:
        model, path = _albert(), tmp_path / "voidful" / "albert_chinese_tiny"
    # random (non-zero) MLM biases, so that slicing them wrongly would show
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    model.eval()
    model.save_pretrained(path)
    _tokenizer_files(path, kind)
    if kind == "chinese-roberta-wwm-ext":
        assert json.loads((path / "config.json").read_text())["model_type"] == "bert"
    if kind == "albert_chinese_tiny":
        assert not list(path.glob("*.model"))  # no sentencepiece file, like the real one
    return path, model


KINDS = ["bert-base-chinese", "chinese-roberta-wwm-ext", "albert_chinese_tiny"]


@pytest.mark.parametrize("kind", KINDS)
def test_lookalike_loads_with_mlm_head_and_identical_logits(make_cfg, tmp_path, kind):
    path, saved = _make(tmp_path, kind)
    model_type = "roberta" if "roberta" in kind else "bert"  # albert: the checkpoint's config decides
    cfg = dict(make_cfg().encoder) | {"pretrained": str(path), "num_layers": None, "model_type": model_type}
    vocab = resolve_vocab_file(cfg)
    assert vocab == str(path / "vocab.txt")
    tok = CharTokenizer(vocab)
    enc, head = build_encoder(cfg, vocab_size=len(tok), with_mlm_head=True)
    assert type(enc).__name__ == ("AlbertModel" if "albert" in kind else "BertModel")
    enc.eval()
    head.eval()
    text = "北京是中国的首都，ALBERT和BERT都来了。"
    ids = torch.tensor([tok.encode(text).ids])
    with torch.no_grad():
        got = head(enc(input_ids=ids).last_hidden_state)
        want = saved(input_ids=ids).logits
    torch.testing.assert_close(got, want)
    # the checkpoint's own tokenizer files agree with the factory's vocab on Chinese text
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(path))
    chinese = "北京是中国的首都"
    assert hf_tok(chinese)["input_ids"] == tok.encode(chinese).ids


@pytest.mark.parametrize("kind", KINDS)
def test_lookalike_trimmed_loading_slices_consistently(make_cfg, tmp_path, kind):
    from bertlab.data.vocab import trim_vocab

    path, saved = _make(tmp_path, kind)
    cfg = dict(make_cfg().encoder) | {"pretrained": str(path), "num_layers": None}
    full_tok = CharTokenizer(resolve_vocab_file(cfg))
    text = "我们在北京天安门看升旗。"
    keep = trim_vocab(full_tok.tokens, "corpus", {full_tok.char_id(c) for c in text})
    assert len(keep) < N_VOCAB
    enc, head = build_encoder(cfg, with_mlm_head=True, keep_ids=keep)
    enc.eval()
    small_tok = CharTokenizer(resolve_vocab_file(cfg), keep_ids=keep)
    new_ids = torch.tensor([small_tok.encode(text).ids])
    old_ids = torch.tensor([full_tok.encode(text).ids])
    assert torch.equal(torch.tensor(keep)[new_ids], old_ids)
    with torch.no_grad():
        got = head(enc(input_ids=new_ids).last_hidden_state)  # [1, T, len(keep)]
        want = saved(input_ids=old_ids).logits[..., keep]
    torch.testing.assert_close(got, want)
    decoder = head.decoder if hasattr(head, "decoder") else head.predictions.decoder
    assert decoder.weight.shape[0] == len(keep) and decoder.weight is enc.embeddings.word_embeddings.weight
