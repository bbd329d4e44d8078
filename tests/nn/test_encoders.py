from __future__ import annotations

import logging

import pytest
import torch

from bertlab.nn.encoders import build_encoder, resolve_vocab_file
from bertlab.utils.errors import CheckpointError, ConfigError

TINY = {
    "model_type": "bert",
    "pretrained": None,
    "num_layers": 3,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def test_fresh_encoder_has_the_configured_shape(make_cfg):
    cfg = dict(make_cfg().encoder) | TINY
    enc, head = build_encoder(cfg)
    assert head is None
    assert enc.config.vocab_size == 21128 and len(enc.encoder.layer) == 3 and enc.config.hidden_size == 32
    enc2, head2 = build_encoder(cfg, with_mlm_head=True)
    assert head2 is not None


def test_checkpoint_directory_round_trip_and_keep_layers(make_cfg, tmp_path):
    cfg = dict(make_cfg().encoder) | TINY
    from transformers import BertForMaskedLM

    enc, _ = build_encoder(cfg)
    full = BertForMaskedLM(enc.config)
    full.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "vocab.txt").write_text(open(cfg["vocab_file"], encoding="utf-8").read(), encoding="utf-8")
    loaded, _ = build_encoder(cfg | {"pretrained": str(tmp_path / "ckpt"), "keep_layers": 2})
    assert len(loaded.encoder.layer) == 2 and loaded.config.num_hidden_layers == 2
    torch.testing.assert_close(
        loaded.encoder.layer[1].output.dense.weight, full.bert.encoder.layer[1].output.dense.weight
    )
    assert resolve_vocab_file(cfg | {"pretrained": str(tmp_path / "ckpt")}).endswith("ckpt/vocab.txt")
    ids = torch.randint(0, 100, (2, 5))
    full.bert.encoder.layer = full.bert.encoder.layer[:2]
    full.eval()
    loaded.eval()
    torch.testing.assert_close(loaded(input_ids=ids).last_hidden_state, full.bert(input_ids=ids).last_hidden_state)
    with pytest.raises(ConfigError, match=r"encoder.keep_layers.*must be in \[1, 3\]"):
        build_encoder(cfg | {"pretrained": str(tmp_path / "ckpt"), "keep_layers": 9})
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


# ----------------------------------------------------------------------- ALBERT
ALBERT = {
    "model_type": "albert",
    "pretrained": None,
    "num_layers": 4,
    "hidden_size": 64,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "embedding_size": 16,
}


def test_fresh_albert_is_factorised_with_one_shared_block(make_cfg):
    cfg = dict(make_cfg().encoder) | ALBERT  # the default config_file is BERT's json: only shared keys are used
    enc, head = build_encoder(cfg, vocab_size=500, with_mlm_head=True)
    assert type(enc).__name__ == "AlbertModel" and type(head).__name__ == "AlbertMLMHead"
    assert enc.config.model_type == "albert" and enc.config.num_hidden_layers == 4
    assert enc.embeddings.word_embeddings.weight.shape == (500, 16)  # factorised: 16-d embedding
    assert enc.encoder.embedding_hidden_mapping_in.weight.shape == (64, 16)
    assert len(enc.encoder.albert_layer_groups) == 1 and len(enc.encoder.albert_layer_groups[0].albert_layers) == 1
    deeper, _ = build_encoder(cfg | {"num_layers": 8}, vocab_size=500)
    # one shared block: depth costs no parameters
    assert sum(p.numel() for p in deeper.parameters()) == sum(p.numel() for p in enc.parameters())
    assert head.decoder.weight is enc.embeddings.word_embeddings.weight  # tied like HF's model
    enc.eval()
    ids = torch.randint(5, 500, (2, 7))
    assert enc(input_ids=ids).last_hidden_state.shape == (2, 7, 64)
    default, _ = build_encoder(dict(make_cfg().encoder) | {"model_type": "albert", "num_layers": 2}, vocab_size=100)
    assert default.config.embedding_size == 128 and default.config.hidden_size == 256  # encoder.model_type=albert alone


def _save_bert(tmp_path, name="ckpt", vocab_rows=None, **kw):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, **kw
    )
    model = BertForMaskedLM(config)
    path = tmp_path / name
    model.save_pretrained(path)
    rows = 60 if vocab_rows is None else vocab_rows
    (path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(0x4E00 + i) for i in range(rows - 5)]) + "\n",
        encoding="utf-8",
    )
    return path, model


def test_bad_checkpoints_are_one_clear_error_naming_path_and_problem(make_cfg, tmp_path):
    import json

    cfg = dict(make_cfg().encoder) | {"num_layers": None}
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty.*no config\.json"):
        build_encoder(cfg | {"pretrained": str(tmp_path / "empty")})
    path, _ = _save_bert(tmp_path, "gpt")
    conf = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(conf | {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(CheckpointError, match=r"gpt.*model_type 'gpt2', not a BERT or ALBERT checkpoint"):
        build_encoder(cfg | {"pretrained": str(path)})
    path, _ = _save_bert(tmp_path, "badvocab", vocab_rows=50)
    with pytest.raises(CheckpointError, match=r"badvocab.*vocab\.txt has 50 tokens but its embedding has 60 rows"):
        build_encoder(cfg | {"pretrained": str(path)}, with_mlm_head=True)
    path, _ = _save_bert(tmp_path, "noweights")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="noweights.*could not be loaded"):
        build_encoder(cfg | {"pretrained": str(path)})
    # a weights file of another architecture under a BERT config
    from safetensors.torch import save_file

    path, _ = _save_bert(tmp_path, "foreign")
    save_file(
        {"transformer.h.0.attn.weight": torch.zeros(2, 2)}, str(path / "model.safetensors"), metadata={"format": "pt"}
    )
    with pytest.raises(CheckpointError, match="foreign.*encoder weights are missing"):
        build_encoder(cfg | {"pretrained": str(path)})


def test_checkpoint_type_comes_from_its_config_and_weights_load_as_float32(make_cfg, tmp_path):
    from transformers import AlbertConfig, AlbertForMaskedLM

    model = AlbertForMaskedLM(
        AlbertConfig(
            vocab_size=60,
            embedding_size=8,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
        )
    ).eval()
    model.half().save_pretrained(tmp_path / "alb")
    cfg = dict(make_cfg().encoder) | {"num_layers": None}  # model_type: bert in the config
    enc, head = build_encoder(cfg | {"pretrained": str(tmp_path / "alb")}, with_mlm_head=True)
    assert type(enc).__name__ == "AlbertModel" and enc.embeddings.word_embeddings.weight.dtype == torch.float32
    torch.testing.assert_close(
        enc.embeddings.word_embeddings.weight, model.albert.embeddings.word_embeddings.weight.float()
    )


def test_factory_returns_train_mode_and_unshares_albert(tmp_path):
    """A loaded checkpoint comes back in train mode (dropout on); ``albert_unshared`` gives N
    independent layers with outputs identical to the shared model's right after loading."""
    import torch
    import transformers as tf

    from bertlab.nn.encoders import build_encoder

    config = tf.AlbertConfig(
        vocab_size=50,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    tf.AlbertForMaskedLM(config).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(45)]) + "\n",
        encoding="utf-8",
    )
    cfg = {"model_type": "albert", "pretrained": str(tmp_path)}
    shared, _ = build_encoder(cfg)
    unshared, head = build_encoder({**cfg, "albert_unshared": True}, with_mlm_head=True)
    assert shared.training and unshared.training and head.training
    assert unshared.config.num_hidden_groups == 3 and len(unshared.encoder.albert_layer_groups) == 3
    ids = torch.randint(5, 50, (2, 7))
    shared.eval(), unshared.eval()
    torch.testing.assert_close(unshared(input_ids=ids).last_hidden_state, shared(input_ids=ids).last_hidden_state)


# ------------------------------------------------- a loaded checkpoint keeps its layers (issue 28)
@pytest.fixture(scope="module")
def bert4(tmp_path_factory):
    """A tiny 4-layer HF BERT (random init, the shipped 21,128-token vocab) saved with
    save_pretrained, as a real checkpoint directory is."""
    import shutil

    from tests.nn.test_pretrained_lookalikes import VOCAB, _bert

    path = tmp_path_factory.mktemp("bert4") / "ckpt"
    torch.manual_seed(0)
    _bert(hidden=32, layers=4).save_pretrained(path)
    shutil.copy(VOCAB, path / "vocab.txt")
    return path


def test_a_loaded_checkpoint_keeps_all_its_layers_through_the_config(make_cfg, bert4, caplog):
    """Every experiment inherits num_layers: 2 (a fresh model's depth): a loaded 4-layer
    checkpoint keeps its 4 layers, with no WARNING; the load summary is logged."""
    cfg = make_cfg(["experiment=cws_crf", f"encoder.pretrained={bert4}"])
    with caplog.at_level(logging.INFO, logger="bertlab.nn.encoders"):
        enc, _ = build_encoder(cfg.encoder, keep_ids=list(range(300)))
    assert len(enc.encoder.layer) == 4 and enc.config.num_hidden_layers == 4
    assert cfg.encoder.num_layers == 2 and cfg.encoder.keep_layers is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = caplog.text
    assert (
        f"encoder.pretrained={bert4} (local directory): model type bert, 4 of 4 layers kept, hidden size 32, "
        "2 attention heads, vocabulary 21128 -> 300 after trimming" in text
    )
    assert (
        f"encoder.pretrained={bert4} weights: 0 missing, 5 unexpected (5 head: pretraining heads this task does "
        "not use: expected)" in text
    )
    assert "encoder.num_layers=2 is the depth of a fresh encoder: not applied" in text


def test_keeping_fewer_layers_is_a_warning_and_old_configs_keep_their_meaning(make_cfg, bert4, caplog):
    cfg = make_cfg(["experiment=cws_crf", f"encoder.pretrained={bert4}", "encoder.keep_layers=1"])
    with caplog.at_level(logging.INFO, logger="bertlab.nn.encoders"):
        enc, head = build_encoder(cfg.encoder, with_mlm_head=True)
    assert len(enc.encoder.layer) == 1 and head is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"encoder.keep_layers=1: keeping 1 of 4 layers of {bert4}"]
    # the pooler of the saved BertForMaskedLM is absent, the MLM head is loaded: nothing missing
    assert f"encoder.pretrained={bert4} weights: 0 missing, 0 unexpected" in caplog.text
    # a run config from before keep_layers existed (a checkpoint's hparams): num_layers cut loaded models
    old = {k: v for k, v in dict(cfg.encoder).items() if k != "keep_layers"} | {"num_layers": 3}
    enc, _ = build_encoder(old)
    assert len(enc.encoder.layer) == 3
    # the layer-1 ablation keeps the first layer of a loaded encoder, as the post does
    for experiment in ("cws_crf_layer1", "crf_layer1/crf2"):
        cfg = make_cfg([f"experiment={experiment}", f"encoder.pretrained={bert4}"])
        assert len(build_encoder(cfg.encoder)[0].encoder.layer) == 1, experiment


def test_transformers_load_report_is_not_printed(make_cfg, bert4, capfd):
    """transformers 5 prints a coloured "BertModel LOAD REPORT" table (the unused MLM head) to
    stderr at from_pretrained; bertlab drops it (utils/noise.py) and logs its own summary."""
    cfg = dict(make_cfg().encoder) | {"pretrained": str(bert4)}
    build_encoder(cfg)
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "\x1b[" not in err and "Loading weights" not in err


def test_num_layers_for_a_loaded_encoder_on_the_command_line_is_one_error_line(bert4, capsys):
    """The old spelling of "keep the first K layers" names the new key, exit 2, before Hydra runs."""
    from tests.conftest import CONF

    from bertlab.utils.hydra_utils import precheck_overrides

    with pytest.raises(SystemExit) as exc:
        precheck_overrides(
            str(CONF), "train", ["experiment=cws_crf", f"encoder.pretrained={bert4}", "encoder.num_layers=1"]
        )
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"bertlab: error: config key 'encoder.num_layers': is the depth of a fresh encoder; "
        f"encoder.pretrained={bert4} is loaded with all its layers: to keep its first 1 use encoder.keep_layers=1"
    )
    # all its layers (4) or null change nothing: accepted
    precheck_overrides(
        str(CONF), "train", ["experiment=cws_crf", f"encoder.pretrained={bert4}", "encoder.num_layers=4"]
    )
    # a loaded experiment too (sentiment_cls loads the small ALBERT), and null stays accepted
    with pytest.raises(SystemExit):
        precheck_overrides(str(CONF), "train", ["experiment=sentiment_cls", "encoder.num_layers=2"])
    precheck_overrides(
        str(CONF), "train", ["experiment=cws_crf", f"encoder.pretrained={bert4}", "encoder.num_layers=null"]
    )
    precheck_overrides(str(CONF), "train", ["experiment=cws_crf", "encoder.num_layers=1"])  # a fresh encoder


@pytest.mark.slow
def test_a_run_log_states_what_was_loaded(bert4, tmp_path):
    """python -m bertlab.train with a loaded encoder: the run's log file (Hydra's job log) has
    the load summary, stderr has no transformers LOAD REPORT."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        "experiment=cws_crf",
        "debug=default",
        f"encoder.pretrained={bert4}",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "data.max_train_chars=3000",
        "data.max_eval_sentences=8",
        "callbacks.rich_progress_bar=null",
        "threads=1",
        f"hydra.run.dir={run}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "LOAD REPORT" not in res.stderr and "\x1b[" not in res.stderr
    log = next(run.glob("*.log")).read_text(encoding="utf-8")  # the job log, <task_name>.log
    assert f"encoder.pretrained={bert4} (local directory): model type bert, 4 of 4 layers kept, hidden size 32" in log
    assert "after trimming" in log and "weights: 0 missing, 5 unexpected" in log
