"""``python -m bertlab.export``: a fine-tuned checkpoint as a Hugging Face folder (issue 28 §3).

The folder loads with ``AutoModel`` / ``AutoTokenizer`` and gives bertlab's token ids and
hidden states; bertlab fine-tunes from it (``encoder.pretrained=<dir>``); a corrupt or
wrong-kind checkpoint, or an existing non-empty ``out``, is one line, exit status 2.
Real checkpoints of a tiny CWS+CRF run with a trimmed vocabulary (tests/conftest.py)."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from bertlab.export import HEAD_CONFIG, HEAD_WEIGHTS, export, hf_encoder
from bertlab.runs import load_run
from bertlab.utils.errors import CheckpointError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
TEXTS = [
    "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）",
    "ＡＢＣ abc……① ㎡ İstanbul ﬁne ΟΔΟΣ ｶﾞ e\u0301 한국어",
    "  中文 \u3000 测试\t x Hello, WORLD! 1998年“引号”",
]


def _cfg(ckpt, out, overwrite=False):
    return OmegaConf.create({"ckpt_path": str(ckpt), "out": str(out), "overwrite": overwrite})


@pytest.fixture(scope="module")
def exported(tiny_cws_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    ckpt = tiny_cws_run / "checkpoints" / "last.ckpt"
    facts = export(_cfg(ckpt, out))
    return ckpt, out, facts


def test_auto_classes_load_it_and_match_bertlab(exported):
    from transformers import AutoModel, AutoTokenizer

    ckpt, out, facts = exported
    model, dm, _ = load_run(str(ckpt))
    bert_tok = dm.ensure_tokenizer()
    tok = AutoTokenizer.from_pretrained(str(out))
    hf = AutoModel.from_pretrained(str(out)).eval()
    assert facts["trimmed"] and hf.config.vocab_size == len(bert_tok) < 21128  # the trimmed vocabulary
    # the same token ids as the run's tokenizer: edge cases and real test sentences
    raw = lzma.open(ROOT / "data/cws/pku_sighan2005/pku_test.utf8.xz", "rt", encoding="utf-8").read().split("\n")
    texts = TEXTS + [line.replace(" ", "") for line in raw[:300] if line.strip()]
    got = tok(texts)["input_ids"]
    assert [g == bert_tok.encode(t).ids for g, t in zip(got, texts)] == [True] * len(texts)
    # the same hidden states (eval mode: no dropout), padding included
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        want = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        have = hf(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    assert torch.allclose(have[mask], want[mask], atol=1e-5), (have - want).abs().max()
    # the head: every non-encoder weight, equal, and described
    from safetensors.torch import load_file

    head = load_file(str(out / HEAD_WEIGHTS))
    state = model.state_dict()
    assert set(head) == {"emission.weight", "emission.bias", "crf.transitions"}
    assert all(torch.equal(head[k], state[k]) for k in head)
    desc = json.loads((out / HEAD_CONFIG).read_text())
    assert desc["task"].endswith("SequenceLabelingModule") and desc["hparams"]["num_tags"] == 4
    card = (out / "README.md").read_text()
    f1 = json.loads((ckpt.parent.parent / "metrics.json").read_text())["test"]["f1"]
    assert f"| f1 | {f1:.4f} |" in card and "SequenceLabelingModule" in card
    assert (out / "vocab.txt").read_text(encoding="utf-8").splitlines() == bert_tok.tokens
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporary folder left


def test_out_must_be_empty_unless_overwrite(exported, tmp_path):
    ckpt, _, _ = exported
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(ConfigError, match=r"config key 'out': .*taken exists and is not empty: pass overwrite=true"):
        export(_cfg(ckpt, out))
    assert (out / "notes.txt").exists()
    with pytest.raises(ConfigError, match="would overwrite the input file"):  # the checkpoint inside out
        export(_cfg(ckpt, ckpt.parent, overwrite=True))
    export(_cfg(ckpt, out, overwrite=True))
    assert not (out / "notes.txt").exists() and (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_an_encoder_hf_does_not_know_is_refused(exported):
    ckpt, _, _ = exported
    model, _, _ = load_run(str(ckpt))
    model.encoder.extra = torch.nn.Linear(2, 2)  # e.g. conditional layer norms, unshared ALBERT layers
    with pytest.raises(CheckpointError, match=r"its encoder is not a plain BertModel \(2 weights HF's BertModel"):
        hf_encoder(model, str(ckpt))


@pytest.mark.slow
def test_cli_refuses_a_corrupt_or_wrong_kind_checkpoint_in_one_line(tiny_cws_run, tmp_path):
    from test_checkpoint_verify import flip_middle

    corrupt = flip_middle(tiny_cws_run / "checkpoints" / "last.ckpt", tmp_path / "flipped.ckpt")
    foreign = tmp_path / "lightning.ckpt"  # a Lightning checkpoint bertlab's train did not write
    torch.save({"state_dict": {"w": torch.zeros(2)}, "global_step": 1}, foreign)
    cases = {
        corrupt: f"ckpt_path: {corrupt} is not a readable checkpoint (corrupt bytes",
        foreign: f"ckpt_path: {foreign} was not written by bertlab's train",
    }

    def run(ckpt):
        cmd = [sys.executable, "-m", "bertlab.export", f"ckpt_path={ckpt}", f"out={tmp_path / ckpt.stem}"]
        return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(cases, pool.map(run, cases)))
    for ckpt, res in results.items():
        errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
        assert res.returncode == 2, res.stderr[-3000:]
        assert len(errors) == 1 and cases[ckpt] in errors[0], errors
        assert "Traceback" not in res.stderr
        assert not (tmp_path / ckpt.stem).exists()


@pytest.mark.slow
def test_bertlab_fine_tunes_from_the_exported_folder(exported, tmp_path):
    from tests.conftest import TINY_CWS_RUN, compose_cfg

    from bertlab.train import train

    _, out, _ = exported
    # another seed: a fresh encoder would start far from the exported weights
    cfg = compose_cfg(tmp_path, [*TINY_CWS_RUN, f"encoder.pretrained={out}", "trainer.max_steps=2", "seed=7"])
    metrics, objs = train(cfg)
    encoder = objs["model"].encoder
    assert "f1" in metrics["test"]
    assert (tmp_path / "metrics.json").is_file()
    from transformers import AutoModel

    start = AutoModel.from_pretrained(str(out)).embeddings.position_embeddings.weight
    got = encoder.embeddings.position_embeddings.weight.detach()
    # two Adam steps move each weight by at most ~2 lr: the run started from the exported weights
    assert (got - start).abs().max() < 10 * cfg.optimizer.lr


@pytest.mark.parametrize("unshared", [False, True])
def test_albert_encoders_export_and_conditioned_ones_are_refused(unshared, tmp_path):
    """A fresh ALBERT tagger (no training), shared or unshared into independent layers (a plain
    AlbertModel with num_hidden_groups = num_hidden_layers): AutoModel gives its hidden states.
    Conditional layer norms (the generation task) have no HF class: refused in one line."""
    from transformers import AutoModel

    from bertlab.nn.conditioning import condition_layer_norms
    from bertlab.tasks.sequence_labeling import SequenceLabelingModule

    vocab = ROOT / "data" / "vocab" / "bert-base-chinese"
    encoder = {
        "model_type": "albert",
        "vocab_file": str(vocab / "vocab.txt"),
        "config_file": str(vocab / "bert_config.json"),
        "num_layers": 2,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "embedding_size": 16,
        "albert_unshared": unshared,
    }
    model = SequenceLabelingModule(encoder, {"type": "crf"}, {"_target_": "torch.optim.Adam", "lr": 1e-3}).eval()
    hf_encoder(model, "x.ckpt").save_pretrained(tmp_path)
    plain = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[101, 2769, 812, 102]])
    with torch.no_grad():
        want = model.encoder(input_ids=ids).last_hidden_state
        assert type(plain).__name__ == "AlbertModel" and plain.config.num_hidden_groups == (2 if unshared else 1)
        assert torch.allclose(plain(input_ids=ids).last_hidden_state, want, atol=1e-5)
    condition_layer_norms(model.encoder, cond_dim=4)
    with pytest.raises(CheckpointError, match=r"x.ckpt: its encoder is not a plain AlbertModel \(\d+ weights HF's"):
        hf_encoder(model, "x.ckpt")
