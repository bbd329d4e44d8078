"""Reading comprehension by MLM: the module, fast_dev_run, a pretrained encoder dir, predict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bertlab.train import train

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_questions=40",
    "data.max_eval_questions=6",
    "callbacks.rich_progress_bar=null",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One short real run (2 epochs on 40 questions) shared by the tests below."""
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("mrc_run")
    cfg = compose_cfg(out, ["experiment=mrc_mlm", *TINY, "trainer.max_epochs=2", "data.batch_size=8"])
    metrics, objs = train(cfg)
    return out, metrics, objs


def test_fast_dev_run(make_cfg):
    cfg = make_cfg(["experiment=mrc_mlm", "debug=fdr", *TINY])
    metrics, objs = train(cfg)
    assert "train/loss" in metrics
    assert objs["model"].hparams.max_answer_len == 32


def test_fast_dev_run_native_format(make_cfg):
    cfg = make_cfg(["experiment=mrc_mlm", "data=mrc_webqa_sogouqa", "debug=fdr", *TINY])
    metrics, objs = train(cfg)
    assert "train/loss" in metrics and objs["datamodule"].stats["bad_records_skipped"] == 2


def test_head_runs_on_the_mask_slots_only_and_padding_is_out_of_the_loss(tiny_run):
    _, _, objs = tiny_run
    model, dm = objs["model"], objs["datamodule"]
    batch = next(iter(dm.train_dataloader()))
    seen = []
    hook = model.mlm_head.register_forward_hook(lambda mod, args, out: seen.append((args[0].shape, out.shape)))
    try:
        model.train()
        model.loss(batch)
    finally:
        hook.remove()
    b, m, v = batch["input_ids"].size(0), 32, len(dm.tokenizer)
    assert seen == [(torch.Size([b, m, 32]), torch.Size([b, m, v]))]  # never [B, T, H]
    model.eval()
    with torch.no_grad():
        logits = model.mask_logits(batch["input_ids"], batch["attention_mask"])
        hidden = model.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long()
        ).last_hidden_state
        full = model.mlm_head(hidden)  # the head on every position, for reference only
    assert torch.allclose(logits, full[:, 1 : 1 + m], atol=1e-5)
    labels = batch["labels"]
    keep = labels != -100
    manual = torch.cat(
        [F.cross_entropy(logits[i][keep[i]], labels[i][keep[i]], reduction="none") for i in range(b)]
    ).mean()
    with torch.no_grad():
        assert model.loss(batch).item() == pytest.approx(manual.item(), rel=1e-5)
    assert keep.sum() < keep.numel()  # the batch really has padding slots


def test_decodings_give_passage_runs_and_agree_on_the_first_slot(tiny_run):
    _, _, objs = tiny_run
    model, dm = objs["model"], objs["datamodule"]
    model.eval()
    batch = next(iter(dm.val_dataloader()))
    cons = model.decode_batch(batch, "constrained")
    auto = model.decode_batch(batch, "autoregressive")
    free = model.decode_batch(batch, "argmax")
    for p, c, a in zip(batch["passages"], cons, auto):
        for ans in (c, a):
            if ans.tokens:
                assert p[ans.start : ans.start + len(ans.tokens)] == ans.tokens
        # slot 1 sees the same input in both (all slots still [MASK]): the same first choice
        assert (c.tokens[:1] or [None]) == (a.tokens[:1] or [None]) and c.probs[0] == pytest.approx(
            a.probs[0], rel=1e-4
        )
    assert len(free) == len(cons)


def test_run_reports_model_ceiling_and_baseline(tiny_run):
    out, metrics, _ = tiny_run
    saved = json.loads((out / "metrics.json").read_text())
    test = saved["test"]
    for key in ("acc", "f1", "final", "oracle_final", "baseline_final", "questions_per_s"):
        assert key in test
    assert test["n_questions"] == 6 and test["oracle_acc"] >= test["acc"] - 1e-9
    lines = (out / "predictions" / "test_answers.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and {"answer", "score", "candidates", "gold"} <= set(json.loads(lines[0]))


def test_predict_round_trip(tiny_run, make_cfg, capsys):
    from bertlab.predict import predict_texts
    from bertlab.runs import load_run

    out, _, _ = tiny_run
    ckpt = str(out / "checkpoints" / "last.ckpt")
    model, dm, _ = load_run(ckpt, expect_task="mlm_reading_comprehension")
    passages = ["北京是中华人民共和国的首都。", "上海 是中国最大的城市，ＡＢＣ。"]
    (rec,) = predict_texts(model, dm, [{"question": "中国的首都是哪里？", "passages": passages}])
    assert rec["question"] == "中国的首都是哪里？" and len(rec["candidates"]) == 2
    for c in rec["candidates"]:
        assert c["answer"] in passages[c["passage"]]  # the original text of a passage run
    assert rec["answer"] in [c["answer"] for c in rec["candidates"]] + [""]
    # predict(cfg): question= + passages=, and task= checks the checkpoint's task
    from bertlab.predict import predict
    from bertlab.utils.errors import CheckpointError, ConfigError

    cfg = make_cfg(
        [
            f"ckpt_path={ckpt}",
            "task=mrc",
            "question='中国的首都是哪里？'",
            f"passages={json.dumps(passages, ensure_ascii=False)}",
        ],
        config_name="predict",
    )
    capsys.readouterr()
    assert predict(cfg) == 1  # the number of records written (to stdout here)
    (got,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert got["answer"] == rec["answer"] and got["score"] == pytest.approx(rec["score"], rel=1e-5)
    with pytest.raises(CheckpointError, match="not a sequence_labeling one"):
        predict(make_cfg([f"ckpt_path={ckpt}", "task=cws", "text=abc"], config_name="predict"))
    with pytest.raises(ConfigError, match="passages"):
        predict(make_cfg([f"ckpt_path={ckpt}", "question=abc"], config_name="predict"))


@pytest.mark.slow
def test_predict_cli(tiny_run):
    """The CLI: JSON on stdout (unquoted list items get quoted for hydra); a task mismatch is one line."""
    from bertlab.predict import predict_texts
    from bertlab.runs import load_run

    out, _, _ = tiny_run
    ckpt = str(out / "checkpoints" / "last.ckpt")
    model, dm, _ = load_run(ckpt)
    (rec,) = predict_texts(
        model,
        dm,
        [
            {
                "question": "中国的首都是哪里？",
                "passages": ["北京是中华人民共和国的首都。", "上海 是中国最大的城市，ＡＢＣ。"],
            }
        ],
    )
    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertlab.predict",
            f"ckpt_path={ckpt}",
            "task=mrc",
            "question=中国的首都是哪里？",
            "passages=[北京是中华人民共和国的首都。,上海 是中国最大的城市，ＡＢＣ。]",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["answer"] == rec["answer"] and got["score"] == pytest.approx(rec["score"], rel=1e-5)
    assert [c["passage"] for c in got["candidates"]] == [0, 1]


@pytest.mark.slow
def test_overfit_check_memorises_its_training_questions(tmp_path):
    """experiment=mrc_mlm_overfit end to end on 24 real CMRC questions: the model learns to copy the
    answers and the constrained decoder reads them back (Acc >= 0.9 on those questions; the real
    encoder size, about a minute on 2 cores; measured: 0.958 at step 300, 0.58 at step 225)."""
    from tests.conftest import compose_cfg

    cfg = compose_cfg(
        tmp_path,
        [
            "experiment=mrc_mlm_overfit",
            "data.overfit_questions=24",
            "data.batch_size=8",
            "trainer.max_epochs=250",
            "trainer.check_val_every_n_epoch=25",
            "callbacks.rich_progress_bar=null",
        ],
    )
    metrics, _ = train(cfg)
    test = metrics["test"]
    assert test["evaluated_on"] == "training questions (overfit check)" and test["n_questions"] == 24
    assert test["oracle_acc"] == 1.0  # 64 slots: every answer fits
    assert test["acc"] >= 0.9, test


def test_pretrained_encoder_directory_keeps_its_mlm_head(make_cfg, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    vocab = ROOT / "data" / "vocab" / "bert-base-chinese" / "vocab.txt"
    config = BertConfig(
        vocab_size=21128,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    full = BertForMaskedLM(config)
    with torch.no_grad():
        full.cls.predictions.transform.dense.weight.normal_()
    ckpt = tmp_path / "bert_tiny"
    full.save_pretrained(ckpt)
    (ckpt / "vocab.txt").write_text(vocab.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = make_cfg(
        [
            "experiment=mrc_mlm",
            "debug=fdr",
            *TINY,
            f"encoder.pretrained={ckpt}",
            "encoder.num_layers=null",
            "train=false",
        ]
    )
    metrics, objs = train(cfg)
    model = objs["model"]
    keep = torch.as_tensor(objs["datamodule"].keep_ids)
    assert torch.equal(model.mlm_head.predictions.transform.dense.weight, full.cls.predictions.transform.dense.weight)
    assert torch.equal(
        model.encoder.embeddings.word_embeddings.weight, full.bert.embeddings.word_embeddings.weight[keep]
    )
    assert torch.equal(model.mlm_head.predictions.bias, full.cls.predictions.bias[keep])
