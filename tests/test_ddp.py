"""DDP for real (trainer=ddp_cpu: 2 gloo processes started by the CLI):

* training is sharded: 2 processes with batch B/2 give the parameters of 1 process with batch
  B, one epoch takes half the steps, and a 2-process resume mid-epoch is exact;
* for EVERY task, one checkpoint evaluated on an odd-sized set with 1 and with 2 processes
  gives identical metrics (P/R/F1, accuracy, EM, counts): each rank evaluates its own
  batches (tasks/evaluation.py), nothing is counted twice or missed, the predictions are
  gathered and scored once; MLM pretraining sums its counts across ranks;
* the sharding/gathering mechanism itself in a real 2-process gloo group (also with a
  padding DistributedSampler, whose duplicated samples count once);
* the guard against Lightning re-running a local multirun."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from bertlab.utils.errors import ConfigError

# one worker runs these under pytest-xdist: two 2-process DDP runs at once would oversubscribe 2 cores
pytestmark = pytest.mark.xdist_group("ddp")
ROOT = Path(__file__).resolve().parents[1]
ENC = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
]
TINY = [
    "experiment=cws_crf",
    *ENC,
    "data.max_train_chars=5000",
    "data.max_eval_sentences=21",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.val_check_interval=1.0",
    "trainer.deterministic=true",
]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)  # tests.* callbacks
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline", PYTHONPATH=path)


def _cli(module: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _run(out: Path, *extra: str) -> dict:
    _cli("bertlab.train", *TINY, *extra, f"hydra.run.dir={out}")
    return json.loads((out / "metrics.json").read_text())


NO_DROPOUT = ["encoder.hidden_dropout_prob=0", "encoder.attention_probs_dropout_prob=0", "model.dropout=0"]


class ExitAtStep(pl.Callback):
    """Every rank leaves at once (exit code 9, no cleanup) right after optimizer step ``step``:
    a 2-process run killed mid-epoch, without a rank left waiting in a collective."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os._exit(9)


def _final(out: Path, *extra: str, ok: bool = True) -> dict:
    """Run the main job (TINY + extra) into ``out``; the final parameters and step (DumpFinalState)."""
    args = [*TINY, *NO_DROPOUT, *extra, f"hydra.run.dir={out}", f"paths.log_dir={out.parent}"]
    args += ["+callbacks.dump._target_=tests.test_resume.DumpFinalState", f"+callbacks.dump.path={out}/final_state.pt"]
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab.train", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    if not ok:
        assert proc.returncode == 9, proc.stderr[-3000:]
        return {}
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(out / "final_state.pt", weights_only=False)
    return {"step": state["global_step"], "model": state["model"]}


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_processes_with_half_the_batch_train_like_one_process(tmp_path):
    """Sharded training: 2 ranks x batch 4 see, step by step, the examples of one process with
    batch 8 (the global batches are cut into rank slices) and DDP averages the gradients of
    the per-sequence mean CRF loss: the same parameters after 6 steps (no dropout), the same
    evaluation counts."""
    one = _final(tmp_path / "one", "trainer=cpu", "data.batch_size=8")
    two = _final(tmp_path / "two", "trainer=ddp_cpu", "data.batch_size=4")
    assert one["step"] == two["step"] == 6  # 2 epochs (experiment cws_crf) x limit_train_batches 3
    diff = _max_diff(one["model"], two["model"])
    print("max |param difference| 1 process x 8 vs 2 processes x 4:", diff)
    assert diff < 2e-5
    # the global batch is logged at train start
    for d, w, b in (("one", 1, 8), ("two", 2, 4)):
        text = (tmp_path / d / "cws_crf.log").read_text()
        assert f"global batch = 8 (world_size {w} x batch {b} x accumulate_grad_batches 1)" in text
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    for split in ("val_last", "test"):
        for k in ("n_sentences", "n_gold", "n_pred", "n_correct"):
            assert m2[split][k] == m1[split][k], (split, k)
    # one run folder, written by rank 0 (rank 1 re-ran with hydra.run.dir pinned to it)
    assert (tmp_path / "two" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_two_processes_take_half_the_steps_and_resume_mid_epoch_exactly(tmp_path):
    """One epoch: 2 ranks take ceil(batches / 2) optimizer steps (1 process: batches); a 2-process
    run stopped mid-epoch (every rank exits after step 5, last checkpoint at step 4) and resumed
    with ckpt_path=last ends with the parameters of the uninterrupted 2-process run."""
    epoch = [
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=null",
        "data.max_train_chars=2500",
        "data.batch_size=4",
    ]
    one = _final(tmp_path / "one", "trainer=cpu", *epoch)
    ref = _final(tmp_path / "ref", "trainer=ddp_cpu", *epoch)
    assert one["step"] >= 8
    assert ref["step"] == -(-one["step"] // 2), (one["step"], ref["step"])
    run = tmp_path / "run"
    save = ["callbacks.resume_checkpoint.every_n_train_steps=4"]
    kill = ["+callbacks.kill._target_=tests.test_ddp.ExitAtStep", "+callbacks.kill.step=5"]
    _final(run, "trainer=ddp_cpu", *epoch, *save, *kill, ok=False)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    position = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["sampler"]
    assert position == {"epoch": 0, "yielded": 4, "seed": 42, "world_size": 2}
    resumed = _final(run, "trainer=ddp_cpu", *epoch, *save, "ckpt_path=last", "resume.also_may_change=[callbacks.kill]")
    assert resumed["step"] == ref["step"]
    diff = _max_diff(resumed["model"], ref["model"])
    print("max |param difference| resumed vs uninterrupted (2 processes):", diff)
    assert diff == 0.0


# ------------------------------------------------------------------ every task: 1 vs 2 processes
# Odd-sized evaluation sets (23 texts, 7 questions) in batches of 5 (MRC: up to 5 passages).
TASKS = {
    "cws": ["experiment=cws_crf", "data.max_train_chars=3000", "data.max_eval_sentences=23"],
    "ner": ["experiment=ner_crf", "data.max_train_chars=3000", "data.max_eval_sentences=23"],
    "sentiment": [
        "experiment=sentiment_cls",
        "encoder.pretrained=null",
        "encoder.model_type=bert",
        "data.max_train_examples=64",
        "data.max_eval_examples=23",
    ],
    # thresholds near the top of the 3-step model's probabilities (subject ~0.20-0.28, object
    # ~0.05-0.11): it extracts some hundred triples, so the counts are not all 0
    "triples": [
        "experiment=triples",
        "data.max_train_records=32",
        "data.max_eval_records=23",
        "model.thresholds.subject_start=0.26",
        "model.thresholds.subject_end=0.25",
        "model.thresholds.object_start=0.1",
        "model.thresholds.object_end=0.09",
    ],
    "mrc": ["experiment=mrc_mlm", "data.max_train_questions=16", "data.max_eval_questions=7"],
}
#: wall-clock metrics: not expected to agree
TIMING = {"decode_seconds", "questions_per_s", "texts_per_s"}


def _rank_lines(text: str) -> dict[int, tuple[int, int, int]]:
    """{rank: (batches, samples, samples from all ranks)} from the evaluation log lines."""
    found = re.findall(r"test: rank (\d) of 2 evaluated (\d+) batches \((\d+) samples\); (\d+) samples from all", text)
    return {int(r): (int(b), int(s), int(t)) for r, b, s, t in found}


TABLE_COLUMNS = {
    "cws": ["text", "gold", "pred", "exact"],
    "ner": ["text", "gold", "pred", "exact"],
    "sentiment": ["text", "gold", "pred"],
    "triples": ["text", "gold", "pred", "exact"],
    "mrc": ["id", "question", "gold", "answer", "score", "correct"],
}


def _check_prediction_table(task: str, out: Path) -> None:
    """With a W&B logger attached the task sent its test predictions as a table: a W&B table in
    the offline run, and (logger=many) the same rows as CSV."""
    import csv
    import glob

    from bertlab.utils.wandb_utils import read_offline_run

    runs = glob.glob(str(out / "wandb" / "offline-run-*"))
    assert len(runs) == 1, runs
    media = read_offline_run(runs[0])["media"]  # the table's JSON (its history row may be buffered away)
    assert any(m.startswith("table/test/predictions_") and m.endswith(".table.json") for m in media), (task, media)
    tables = sorted((out / "csv" / "tables").glob("test_predictions-step*.csv"))
    assert len(tables) == 1, tables
    with open(tables[0], encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == TABLE_COLUMNS[task]
    assert len(rows) - 1 == (7 if task == "mrc" else 23)  # one row per evaluated text / question


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_one_checkpoint_evaluated_by_one_and_two_processes_gives_identical_metrics(task, tmp_path):
    run = tmp_path / "train"
    _cli(
        "bertlab.train",
        *ENC,
        *TASKS[task],
        "data.eval_batch_size=5",
        "data.batch_size=8",
        "trainer.max_steps=3",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=0",
        "test=false",
        "optimized_metric=null",
        f"hydra.run.dir={run}",
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    got, logs = {}, {}
    for trainer in ("cpu", "ddp_cpu"):
        out = tmp_path / trainer
        loggers = ["logger=many"] if trainer == "cpu" else []  # W&B (offline) attached: the prediction table
        logs[trainer] = _cli(
            "bertlab.evaluate",
            f"ckpt_path={ckpt}",
            f"trainer={trainer}",
            *loggers,
            "callbacks.rich_progress_bar=null",
            f"hydra.run.dir={out}",
        )
        got[trainer] = json.loads((out / "metrics.json").read_text())["test"]
    _check_prediction_table(task, tmp_path / "cpu")
    one, two = ({k: v for k, v in m.items() if k not in TIMING} for m in (got["cpu"], got["ddp_cpu"]))
    assert two == one  # P/R/F1 (acc, EM) and every count: identical, not approximately equal
    # ... and so are the written predictions
    files = sorted(p.name for p in (tmp_path / "cpu" / "predictions").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "ddp_cpu" / "predictions").iterdir())
    for name in files:
        assert (tmp_path / "ddp_cpu" / "predictions" / name).read_bytes() == (
            tmp_path / "cpu" / "predictions" / name
        ).read_bytes(), name
    # the two processes really split the batches (batches r, r+2, ...): nothing shared, nothing missed
    ranks = _rank_lines(logs["ddp_cpu"])
    assert set(ranks) == {0, 1}, logs["ddp_cpu"][-3000:]
    (b0, s0, total0), (b1, s1, total1) = ranks[0], ranks[1]
    assert b1 >= 1 and b0 - b1 in (0, 1)
    assert s0 + s1 == total0 == total1
    assert not _rank_lines(logs["cpu"])
    print(task, {k: one[k] for k in one if isinstance(one[k], (int, float))})


@pytest.mark.slow
def test_generation_perplexity_is_the_same_with_one_and_two_processes(tmp_path):
    """cond_gen: each process scores its share of the evaluation batches and the per-label NLL
    sums and token counts are added across processes (23 texts in batches of 5)."""
    run = tmp_path / "train"
    _cli(
        "bertlab.train",
        *ENC,
        "experiment=cond_gen",
        "data.max_train_chars=4000",
        "data.max_eval_sentences=23",
        "data.eval_batch_size=5",
        "data.batch_size=8",
        "trainer.max_steps=3",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=0",
        "trainer.max_time=null",
        "test=false",
        "optimized_metric=null",
        f"hydra.run.dir={run}",
    )
    got = {}
    for trainer in ("cpu", "ddp_cpu"):
        out = tmp_path / trainer
        _cli(
            "bertlab.evaluate",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            f"trainer={trainer}",
            "+model.generation.num_samples=0",
            "callbacks.rich_progress_bar=null",
            f"hydra.run.dir={out}",
        )
        got[trainer] = json.loads((out / "metrics.json").read_text())["test"]
    one, two = got["cpu"], got["ddp_cpu"]
    assert two["n_tokens"] == one["n_tokens"] > 0
    for key in ("ppl", "ppl_negative", "ppl_positive"):
        assert two[key] == pytest.approx(one[key], rel=1e-6), key


@pytest.mark.slow
def test_mlm_pretraining_validation_sums_counts_across_processes(tmp_path):
    args = [
        "experiment=pretrain_mlm",
        "encoder.num_layers=1",
        "encoder.hidden_size=32",
        "encoder.num_attention_heads=2",
        "encoder.intermediate_size=64",
        "data.max_train_texts=60",
        "data.max_val_texts=23",
        "data.batch_size=4",
        "data.packed_batch_size=2",
        "data.eval_batch_size=5",
        "callbacks.rich_progress_bar=null",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.max_time=null",
        "model.export_on_fit_end=false",
        "test=false",
        "optimized_metric=null",
        # training is sharded (each rank its own examples and MLM masks), so a 2-process run
        # trains other weights than 1 process: lr 1e-12 (Adam steps of ~1e-12, below float32
        # resolution of the weights) keeps the weights of both equal, and the
        # validation (counts summed across ranks) is compared on the same model
        "optimizer.lr=1e-12",
    ]
    val = {}
    for trainer in ("cpu", "ddp_cpu"):
        out = tmp_path / trainer
        _cli("bertlab.train", *args, f"trainer={trainer}", f"hydra.run.dir={out}")
        val[trainer] = json.loads((out / "metrics.json").read_text())["val_last"]
    one, two = val["cpu"], val["ddp_cpu"]
    assert two["n_targets"] == one["n_targets"] > 0
    assert two["mlm_loss"] == pytest.approx(one["mlm_loss"], rel=1e-5)
    assert two["mlm_acc"] == pytest.approx(one["mlm_acc"], abs=2 / one["n_targets"])


# ------------------------------------------------------------------ the mechanism, 2 real processes
def _two_rank_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    from bertlab.tasks.evaluation import EvalCollector
    from bertlab.utils.distributed import sum_across_ranks, sum_dicts_across_ranks

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)

    class Echo(EvalCollector):
        def eval_predictions(self, batch):
            return {i: i * 10 for i in batch}

    result = {}
    # our loaders: every rank iterates the same 5 batches of an 11-sample set, evaluates its own
    batches = [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9], [10]]
    m = Echo()
    m._eval_start("test", DataLoader(list(range(11)), batch_sampler=batches))
    for batch_idx, batch in enumerate(batches):
        m._eval_step("test", batch, batch_idx)
    result["mine"] = sorted(m._eval_state()["test"]["preds"])
    preds, _, _ = m._eval_gather("test")
    result["merged"] = sorted(preds.items())
    # a padding DistributedSampler (11 samples -> 6 + 6, sample 0 twice): each rank evaluates all
    # of its own batches and the duplicate counts once
    loader = DataLoader(
        list(range(11)), batch_size=4, sampler=DistributedSampler(list(range(11)), 2, rank, shuffle=False)
    )
    m._eval_start("val", loader)
    for batch_idx, batch in enumerate(loader):
        m._eval_step("val", batch.tolist(), batch_idx)
    result["padded_mine"] = sorted(m._eval_state()["val"]["preds"])
    preds, _, _ = m._eval_gather("val")
    result["padded_merged"] = sorted(preds)
    result["sums"] = sum_across_ranks([1.5, rank + 1, 10])
    result["dict_sums"] = sorted(sum_dicts_across_ranks({"a": 1, f"only{rank}": 2.5}).items())
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def test_ranks_split_batches_and_gather_predictions_without_duplicates(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_two_rank_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["mine"] == [0, 1, 2, 5, 6, 7, 10] and r1["mine"] == [3, 4, 8, 9]  # batches 0,2,4 / 1,3
    assert r0["merged"] == r1["merged"] == [[i, i * 10] for i in range(11)]
    assert r0["padded_mine"] == [0, 2, 4, 6, 8, 10] and r1["padded_mine"] == [0, 1, 3, 5, 7, 9]
    assert r0["padded_merged"] == r1["padded_merged"] == list(range(11))
    assert r0["sums"] == r1["sums"] == [3.0, 3.0, 20.0]
    assert r0["dict_sums"] == r1["dict_sums"] == [["a", 2], ["only0", 2.5], ["only1", 2.5]]


def test_local_multirun_with_relaunching_ddp_stops_with_a_clear_message(make_cfg, monkeypatch):
    from omegaconf import open_dict

    from bertlab.utils.distributed import check_ddp_launch

    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cfg = make_cfg(["trainer=ddp_cpu"])
    check_ddp_launch(cfg)  # a single run: fine
    with pytest.raises(ConfigError, match="slurm_ddp"):
        check_ddp_launch(cfg, multirun=True)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    check_ddp_launch(cfg, multirun=True)  # SLURM starts the processes: fine
    monkeypatch.delenv("SLURM_NTASKS")
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp_spawn"
    check_ddp_launch(cfg, multirun=True)  # spawned workers: no re-run of argv
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp"
        cfg.trainer.devices = 1
    check_ddp_launch(cfg, multirun=True)  # one process: nothing is re-launched
