"""MLM pretraining: the head sees masked positions only, both experiments run, and the exported
HF directory loads through ``encoder.pretrained`` with identical MLM logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bertlab.data.mlm_datamodule import IGNORE, MlmMasker, mlm_collate
from bertlab.nn.encoders import build_encoder, resolve_vocab_file
from bertlab.tasks.mlm_pretraining import MlmPretrainingModule
from bertlab.tasks.mlm_pretraining import main as export_main
from bertlab.train import train

TINY = [
    "encoder.num_layers=2",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_texts=300",
    "data.max_val_texts=20",
    "data.batch_size=8",
    "data.packed_batch_size=2",
    "callbacks.rich_progress_bar=null",
    "threads=1",
]
ENC = {
    "pretrained": None,
    "num_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "vocab_file": "data/vocab/bert-base-chinese/vocab.txt",
    "trim_vocab": "none",
}
OPT = {"_target_": "torch.optim.Adam", "lr": 1e-3}


def _batch(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    masker = MlmMasker(mask_id=4, random_ids=range(5, vocab_size))
    feats = []
    for n in (40, 17, 63):
        ids = np.concatenate([[2], rng.integers(5, vocab_size, n), [3]])
        feats.append({"input_ids": ids, "word_ids": np.concatenate([[-1], np.arange(n), [-1]])})
    return mlm_collate(feats, pad_id=0, masker=masker, rng=rng)


@pytest.mark.parametrize("model_type", ["bert", "albert"])
def test_head_sees_only_the_masked_positions(model_type):
    module = MlmPretrainingModule(ENC | {"model_type": model_type, "config_file": None}, OPT)
    module.eval()
    batch = _batch(module.encoder.config.vocab_size)
    rows = []
    handle = module.mlm_head.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape))
    logits, labels = module.mlm_logits(batch)
    handle.remove()
    n_target = int((batch["labels"] != IGNORE).sum())
    assert rows == [torch.Size([n_target, 32])]  # one call, on the targets only
    assert n_target < int(batch["attention_mask"].sum()) / 4
    assert logits.shape == (n_target, module.encoder.config.vocab_size)
    # oracle: the head over every position, then the targets picked
    with torch.no_grad():
        hidden = module.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()
        ).last_hidden_state
        full = module.mlm_head(hidden)
    target = batch["labels"] != IGNORE
    torch.testing.assert_close(logits.detach(), full[target])
    assert torch.equal(labels, batch["labels"][target])


@pytest.mark.parametrize("experiment", ["pretrain_mlm", "pretrain_albert"])
def test_fast_dev_run(make_cfg, experiment, tmp_path):
    cfg = make_cfg([f"experiment={experiment}", "debug=fdr", *TINY])
    assert cfg.data.packed_fraction >= 0.2 and cfg.encoder.max_position_embeddings == 512
    metrics, objs = train(cfg)
    assert "train/mlm_loss" in metrics and "val/mlm_acc" in metrics
    out = tmp_path / "pretrained"
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "CARD.md", "mlm_curves.png"):
        assert (out / name).is_file(), name
    conf = json.loads((out / "config.json").read_text())
    if experiment == "pretrain_albert":
        assert conf["model_type"] == "albert" and conf["embedding_size"] == 128
        assert conf["num_hidden_groups"] == 1 and conf["inner_group_num"] == 1 and conf["num_hidden_layers"] == 2
        assert conf["architectures"] == ["AlbertForMaskedLM"]
    else:
        assert conf["model_type"] == "bert" and conf["architectures"] == ["BertForMaskedLM"]


@pytest.fixture(scope="module", params=["pretrain_mlm", "pretrain_albert"])
def short_run(request, tmp_path_factory):
    """A few real optimisation steps, exported in fp32 to an explicit export_dir."""
    from tests.conftest import compose_cfg

    tmp = tmp_path_factory.mktemp(request.param)
    cfg = compose_cfg(
        tmp,
        [
            f"experiment={request.param}",
            *TINY,
            "trainer.max_steps=5",
            "trainer.val_check_interval=3",
            "model.export_fp16=false",
            f"export_dir={tmp}/exported",
        ],
    )
    metrics, objs = train(cfg)
    objs["metrics"] = metrics
    return tmp, cfg, objs


@pytest.mark.slow
def test_export_loads_through_build_encoder_with_identical_mlm_logits(short_run):
    tmp, cfg, objs = short_run
    module, dm = objs["model"], objs["datamodule"]
    out = tmp / "exported"
    assert not (tmp / "pretrained").exists()  # export_dir given: nothing under the run folder
    enc_cfg = dict(cfg.encoder) | {"pretrained": str(out), "num_layers": None, "model_type": "bert"}
    assert resolve_vocab_file(enc_cfg) == str(out / "vocab.txt")
    vocab = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == dm.tokenizer.tokens and len(vocab) == module.encoder.config.vocab_size  # trimmed, row for row
    enc, head = build_encoder(enc_cfg, vocab_size=len(vocab), with_mlm_head=True)
    assert type(enc) is type(module.encoder)
    enc.eval()
    module.eval()
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        want = module.mlm_head(
            module.encoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()
            ).last_hidden_state
        )
        got = head(enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()).last_hidden_state)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # the card and the curves
    card = (out / "CARD.md").read_text(encoding="utf-8")
    facts = json.loads((out / "card.json").read_text(encoding="utf-8"))
    # the run's final val/* metrics are those of the final weights (step 5; Lightning validated at step 3 only)
    assert objs["metrics"]["val/mlm_acc"] == pytest.approx(facts["heldout_trained_weights"]["mlm_acc"])
    assert objs["metrics"]["val_last"]["step"] == 5
    val_steps = [r["step"] for r in module.history if r["split"] == "val"]
    assert val_steps == [3, 5]
    assert facts["steps"] == 5 and facts["tokens_seen"] == module.tokens_seen > 0 and facts["packed_steps"] >= 1
    assert facts["heldout_exported_weights"] == facts["heldout_trained_weights"]  # fp32: identical
    assert "steps: 5" in card and f"{module.tokens_seen:,}" in card and "held-out MLM" in card
    assert (out / "mlm_curves.png").stat().st_size > 5000
    # a BertTokenizer reads the exported directory and agrees with bertlab's tokenizer on Chinese
    from transformers import AutoTokenizer

    text = "人民日报社论指出"
    assert AutoTokenizer.from_pretrained(str(out))(text)["input_ids"] == dm.tokenizer.encode(text).ids


@pytest.mark.slow
def test_fp16_export_and_export_from_checkpoint(short_run):
    from safetensors import safe_open

    tmp, cfg, objs = short_run
    module = objs["model"]
    half = tmp / "half"
    module.export_pretrained(str(half), fp16=True)
    with safe_open(str(half / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    assert (half / "model.safetensors").stat().st_size < 0.6 * (tmp / "exported" / "model.safetensors").stat().st_size
    enc_cfg = dict(cfg.encoder) | {"pretrained": str(half), "num_layers": None}
    enc, head = build_encoder(enc_cfg, with_mlm_head=True)
    assert enc.embeddings.word_embeddings.weight.dtype == torch.float32
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    enc.eval()
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            head(enc(input_ids=ids).last_hidden_state),
            module.mlm_head(module.encoder(input_ids=ids).last_hidden_state),
            atol=2e-2,
            rtol=1e-2,
        )
    # on demand, from the run's last checkpoint (the CLI)
    again = tmp / "from_ckpt"
    export_main([str(tmp / "checkpoints" / "last.ckpt"), str(again), "--fp32"])
    a, _ = build_encoder(dict(cfg.encoder) | {"pretrained": str(again), "num_layers": None})
    b, _ = build_encoder(dict(cfg.encoder) | {"pretrained": str(tmp / "exported"), "num_layers": None})
    for (n1, p1), (n2, p2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1


@pytest.mark.slow
def test_a_task_fine_tunes_from_the_exported_checkpoint(short_run, make_cfg):
    tmp, cfg, _ = short_run
    overrides = [
        "experiment=cws_crf",
        "debug=fdr",
        f"encoder.pretrained={tmp}/exported",
        "encoder.num_layers=null",
        "data.max_train_chars=5000",
        "data.max_eval_sentences=10",
        "callbacks.rich_progress_bar=null",
    ]
    metrics, objs = train(make_cfg(overrides))
    enc = objs["model"].encoder
    assert type(enc).__name__ == ("AlbertModel" if "albert" in str(tmp) else "BertModel")
    assert enc.config.hidden_size == 32 and "train/loss" in metrics


def test_export_cli_bad_checkpoint_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(tmp_path / "missing.ckpt"), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bertlab: error: ckpt_path: no such file: {tmp_path}/missing.ckpt"]
