"""trainer.precision=bf16-mixed on CPU for every experiment family: one debug-size training
(fast_dev_run: a training step, a validation and a test batch) runs and gives a finite loss.
Before nn/losses.float32 the CRF's backward crashed with 'expected scalar type Float but
found BFloat16'. Also the CPU bf16 detection (bertlab.utils.precision)."""

from __future__ import annotations

import math

import pytest

from bertlab.train import train
from bertlab.utils import precision

ENC = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
]
FAMILIES = {
    "cws_crf": ["experiment=cws_crf", "data.max_train_chars=3000", "data.max_eval_sentences=8"],
    "cws_memm": [
        "experiment=cws_crf",
        "head=memm",
        "~optimizer.lr_multipliers",
        "data.max_train_chars=3000",
        "data.max_eval_sentences=8",
    ],
    "cws_softmax": ["experiment=cws_softmax", "data.max_train_chars=3000", "data.max_eval_sentences=8"],
    "ner_crf": ["experiment=ner_crf", "data.max_train_chars=3000", "data.max_eval_sentences=8"],
    "sentiment": [
        "experiment=sentiment_cls",
        "encoder.pretrained=null",
        "encoder.model_type=bert",
        "data.max_train_examples=16",
        "data.max_eval_examples=8",
    ],
    "triples": ["experiment=triples", "data.max_train_records=16", "data.max_eval_records=8"],
    "mrc": ["experiment=mrc_mlm", "data.max_train_questions=8", "data.max_eval_questions=4"],
    "generation": ["experiment=cond_gen", "data.max_train_chars=3000", "data.max_eval_sentences=8"],
    "pretraining": ["experiment=pretrain_mlm", "data.max_train_texts=40", "data.max_val_texts=8", "data.batch_size=4"],
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bf16_mixed_training_runs_for_every_family(family, make_cfg):
    cfg = make_cfg([*FAMILIES[family], *ENC, "debug=fdr", "trainer.precision=bf16-mixed", "threads=1"])
    metrics, objs = train(cfg)
    assert objs["trainer"].precision == "bf16-mixed"
    loss = metrics["train/mlm_loss"] if family == "pretraining" else metrics["train/loss"]
    assert math.isfinite(loss)


def test_cpu_bf16_detection_reads_the_cpu_flags(tmp_path):
    avx512 = tmp_path / "avx512"
    avx512.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert precision.cpu_bf16_flags(avx512) == ["avx512_bf16", "amx_tile"]
    assert precision.cpu_supports_bf16(avx512) and precision.cpu_supports_bf16(amx)
    assert not precision.cpu_supports_bf16(plain)
    assert not precision.cpu_supports_bf16(tmp_path / "missing")  # not Linux: no claim
    assert precision.best_precision("cpu", cpuinfo=avx512) == "bf16-mixed"
    assert precision.best_precision("cpu", cpuinfo=plain) == "32-true"


def test_gpu_trainer_config_resolves_its_precision_on_the_training_machine(make_cfg, monkeypatch):
    import torch
    from omegaconf import OmegaConf

    for name in ("gpu", "ddp"):
        cfg = make_cfg(["experiment=cws_crf", f"trainer={name}"])
        assert OmegaConf.to_container(cfg.trainer)["precision"] == "${best_precision:gpu}"
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert cfg.trainer.precision == "32-true"  # no GPU visible here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "fake")
    for bf16, want in ((True, "bf16-mixed"), (False, "16-mixed")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda b=bf16: b)
        assert precision.best_precision("gpu") == want
