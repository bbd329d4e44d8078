"""W&B logging for real, offline: a 2-job Hydra multirun read back from the .wandb files
(groups, metrics, lrs, the transition image, the task's prediction table), the
finish-on-failure helper, and the generic table helper (W&B / TensorBoard / CSV)."""

from __future__ import annotations

import csv
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("wandb")

from bertlab.utils.wandb_utils import (  # noqa: E402
    finish_wandb,
    make_wandb_logger,
    read_offline_run,
    wandb_run_finished,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
    "data.max_train_chars=5000",
    "data.max_eval_sentences=20",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.val_check_interval=1.0",
    "trainer.log_every_n_steps=1",
]


def _env() -> dict[str, str]:
    env = dict(
        os.environ,
        WANDB_MODE="offline",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        WANDB_SILENT="true",
        WANDB_DISABLE_GIT="true",
    )
    env.pop("WANDB_PROJECT", None)
    return env


@pytest.mark.slow
def test_two_job_multirun_gives_two_offline_runs_in_one_group(tmp_path):
    sweep = tmp_path / "sweep42"
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab.train", "-m", "logger=many", "seed=1,2", *TINY_RUN, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = []
    for job in ("0", "1"):
        dirs = glob.glob(str(sweep / job / "wandb" / "offline-run-*"))
        assert len(dirs) == 1, f"job {job}: {dirs}"
        runs.append((job, read_offline_run(dirs[0])))
    (j0, r0), (j1, r1) = runs
    assert r0["id"] != r1["id"]
    assert r0["group"] == r1["group"] == "cws_crf-sweep42"
    assert (r0["name"], r1["name"]) == ("cws_crf-sweep42-0", "cws_crf-sweep42-1")
    for job, run in runs:
        assert run["exit_code"] == 0  # finished, not merged into the next job's run
        assert run["project"] == "bertlab" and run["job_type"] == "cws_crf"
        assert run["tags"] == ["cws", "crf"]
        # the resolved config: no interpolations left, the job's own values
        cfg = run["config"]
        assert cfg["seed"] == int(job) + 1
        assert cfg["paths"]["output_dir"] == str(sweep / job)
        assert "${" not in json.dumps(cfg)
        keys = set().union(*run["history"])
        for k in ("train/loss", "val/f1", "test/f1", "lr-Adam/base", "lr-Adam/crf"):
            assert k in keys, (job, k, sorted(keys))
        # the effective lrs of the two param groups (base lr, CRF x10 multiplier)
        lrs = [h for h in run["history"] if "lr-Adam/base" in h]
        assert lrs[0]["lr-Adam/crf"] == pytest.approx(10 * lrs[0]["lr-Adam/base"])
        # the transition heatmap arrived as a W&B image, and the PNG is there
        imgs = [h for h in run["history"] if h.get("crf/transitions/_type") == "images/separated"]
        assert imgs, "no image logged"
        pngs = [m for m in run["media"] if m.startswith("images/crf/transitions") and m.endswith(".png")]
        assert len(pngs) == len(imgs)
        png = sorted(glob.glob(str(sweep / job / "wandb" / "offline-run-*" / "files" / "media" / pngs[0])))[0]
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # the task's prediction table (tasks/evaluation.py -> log_table): CWS text / gold / pred
        # (found by its media JSON, written when logged: the history row pointing at it is buffered
        # by wandb and, offline, sometimes missing from the .wandb file)
        tables = [m for m in run["media"] if m.startswith("table/test/predictions_") and m.endswith(".table.json")]
        assert len(tables) == 1, run["media"]
        assert any(m.startswith("table/val/predictions_") for m in run["media"]), run["media"]
        media = glob.glob(str(sweep / job / "wandb" / "offline-run-*" / "files" / "media"))[0]
        tj = json.loads(Path(media, tables[0]).read_text(encoding="utf-8"))
        assert tj["columns"] == ["text", "gold", "pred", "exact"] and len(tj["data"]) == 20
        saved_words = (sweep / job / "predictions" / "test_segmentation.txt").read_text(encoding="utf-8").splitlines()
        assert [row[2] for row in tj["data"]] == saved_words[:20]  # the predictions, in corpus order
        assert all("".join(row[1].split()) == "".join(row[0].split()) for row in tj["data"])  # gold words of the text
        # the summary agrees with the job's metrics.json
        saved = json.loads((sweep / job / "metrics.json").read_text())
        assert run["summary"]["test/f1"] == pytest.approx(saved["test"]["f1"], abs=1e-6)
        # logger=many: CSV and TensorBoard too
        assert (sweep / job / "csv" / "metrics.csv").is_file()
        assert glob.glob(str(sweep / job / "tensorboard" / "events.out.tfevents.*"))


def _offline_logger(tmp_path, **kw):
    os.environ["WANDB_SILENT"] = "true"
    return make_wandb_logger(project="bertlab-test", save_dir=str(tmp_path), mode="offline", **kw)


def _the_run(tmp_path, timeout: float = 20.0) -> dict:
    """The one offline run under tmp_path; waits for wandb's core process to write the
    exit record (wandb.finish can return a moment before the file is complete)."""
    import time

    dirs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(dirs) == 1, dirs
    deadline = time.time() + timeout
    while True:
        run = read_offline_run(dirs[0])
        if run["exit_code"] is not None or time.time() > deadline:
            return run
        time.sleep(0.2)


def test_run_is_finished_with_a_failed_status_when_the_job_raises(tmp_path):
    import wandb

    logger = _offline_logger(tmp_path, name="boom")
    with pytest.raises(RuntimeError, match="boom"):
        with wandb_run_finished():
            logger.log_metrics({"x": 1.0}, step=0)
            raise RuntimeError("boom")
    assert wandb.run is None
    run = _the_run(tmp_path)
    assert run["exit_code"] == 1 and run["name"] == "boom"
    assert any(h.get("x") == 1.0 for h in run["history"])
    assert finish_wandb() is False  # nothing left to finish


def test_run_is_finished_with_status_0_on_success(tmp_path):
    import wandb

    logger = _offline_logger(tmp_path)
    with wandb_run_finished():
        logger.log_metrics({"y": 2.0}, step=0)
    assert wandb.run is None and _the_run(tmp_path)["exit_code"] == 0


def test_a_stale_run_is_finished_before_the_next_logger_starts(tmp_path):
    import wandb

    first = _offline_logger(tmp_path / "a", name="first")
    first.log_metrics({"a": 1.0}, step=0)
    second = _offline_logger(tmp_path / "b", name="second")
    second.log_metrics({"b": 1.0}, step=0)
    assert second.experiment.id != first.experiment.id
    finish_wandb(0)
    assert wandb.run is None
    first_run, second_run = _the_run(tmp_path / "a"), _the_run(tmp_path / "b")
    assert first_run["exit_code"] is not None and first_run["name"] == "first"
    assert any("a" in h for h in first_run["history"]) and not any("b" in h for h in first_run["history"])
    assert any("b" in h for h in second_run["history"])


def test_a_resumed_run_folder_continues_its_wandb_run(tmp_path, monkeypatch):
    """The run id is kept in the run folder: a resume (or a SLURM requeue) of the folder logs
    to the same W&B run; another folder gets another run; only global rank 0 writes the file."""
    from bertlab.utils.wandb_utils import RUN_ID_FILE

    ids = []
    for attempt in range(2):  # the killed run, then its resume
        logger = _offline_logger(tmp_path, name="run")
        logger.log_metrics({"attempt": float(attempt)}, step=attempt)
        ids.append(logger.experiment.id)
        finish_wandb(0)
    assert ids[0] == ids[1] == (tmp_path / RUN_ID_FILE).read_text().strip()
    dirs = sorted(glob.glob(str(tmp_path / "wandb" / "offline-run-*")))
    assert len(dirs) == 2 and {read_offline_run(d)["id"] for d in dirs} == {ids[0]}
    assert make_wandb_logger(save_dir=str(tmp_path / "other"))._wandb_init["id"] not in (None, ids[0])
    monkeypatch.setenv("RANK", "1")
    lg = make_wandb_logger(save_dir=str(tmp_path / "rank1"))
    assert lg._wandb_init["id"] and not (tmp_path / "rank1" / RUN_ID_FILE).exists()
    assert make_wandb_logger(save_dir=str(tmp_path), id="given")._wandb_init["id"] == "given"


def test_mode_offline_by_default_and_checkpoint_artifacts_only_online(tmp_path, monkeypatch):
    from bertlab.utils.errors import ConfigError

    monkeypatch.delenv("WANDB_MODE", raising=False)
    lg = make_wandb_logger(save_dir=str(tmp_path), log_model=True)
    assert lg._wandb_init["mode"] == "offline" and lg._log_model is False
    monkeypatch.setenv("WANDB_MODE", "online")
    lg = make_wandb_logger(save_dir=str(tmp_path), log_model=True, group="g", job_type="train", tags=["t"])
    assert lg._wandb_init["mode"] == "online" and lg._log_model is True
    assert (lg._wandb_init["group"], lg._wandb_init["job_type"], lg._wandb_init["tags"]) == ("g", "train", ["t"])
    with pytest.raises(ConfigError, match="WANDB_MODE"):
        make_wandb_logger(save_dir=str(tmp_path), mode="sometimes")


def test_log_table_reaches_wandb_tensorboard_and_csv(tmp_path):
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bertlab.utils.logging_tables import log_table

    wb = _offline_logger(tmp_path, name="tables")
    tb = TensorBoardLogger(save_dir=str(tmp_path / "tb"), name="", version="")
    cs = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    trainer = pl.Trainer(
        logger=[wb, tb, cs],
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    cols = ["text", "gold", "pred", "correct"]
    rows = [["北京大学", "北京 大学", "北京大学", False], ["你好", "你好", "你好", True]]
    with wandb_run_finished():
        assert log_table(trainer, "test/predictions", cols, rows, step=3) == ["wandb", "tensorboard", "csv"]
        with pytest.raises(ValueError, match="row 0 has 2 cells"):
            log_table(trainer, "bad", cols, [["a", "b"]])
    # W&B: a table in the history, its JSON under media/ with the same cells
    run = _the_run(tmp_path)
    hist = [h for h in run["history"] if h.get("test/predictions/_type") == "table-file"]
    assert len(hist) == 1
    table_files = [m for m in run["media"] if m.startswith("table") and m.endswith(".table.json")]
    assert len(table_files) == 1
    media = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "files" / "media"))[0]
    tj = json.loads(Path(media, table_files[0]).read_text(encoding="utf-8"))
    assert tj["columns"] == cols and tj["data"] == rows
    # TensorBoard: a markdown table as text
    ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    ea.Reload()
    tensors = ea.Tensors("test/predictions/text_summary")
    text = tensors[0].tensor_proto.string_val[0].decode("utf-8")
    assert tensors[0].step == 3 and "| text | gold | pred | correct |" in text and "| 北京大学 | 北京 大学 |" in text
    # CSV: a file per call
    with open(tmp_path / "csv" / "tables" / "test_predictions-step0000003.csv", encoding="utf-8") as f:
        got = list(csv.reader(f))
    assert got == [cols, ["北京大学", "北京 大学", "北京大学", "False"], ["你好", "你好", "你好", "True"]]
