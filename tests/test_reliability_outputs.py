"""Issue 21: outputs and final status of runs and tools.

* status.json is "done" only when the whole job completed: an exception after ``train``
  returned (here: the objective ``optimized_metric`` is not among the metrics) records
  "failed" with the one-line reason, and metrics.json no longer marks the folder finished;
* predict / generate / evaluate check their output path before loading a model (an output
  that is an input, a missing folder, a directory), an empty input gives an empty file, and
  a word-segmentation checkpoint given question= / passages= stops with one line;
* start-up checks of constraints across keys (positions, heads, vocabulary).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertlab.utils.errors import BertlabError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_chars=3000",
    "data.max_eval_sentences=8",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "callbacks.rich_progress_bar=null",
]


@pytest.fixture(scope="module")
def failed_objective_run(tmp_path_factory):
    """A tiny CWS run whose objective cannot be computed (after training and testing)."""
    from tests.conftest import compose_cfg

    from bertlab.train import run_job

    out = tmp_path_factory.mktemp("objective")
    cfg = compose_cfg(
        out,
        [
            "experiment=cws_crf",
            *TINY,
            "optimized_metric=val/no_such_metric",
            "callbacks.model_checkpoint.monitor=val/f1",
        ],
    )
    with pytest.raises(KeyError, match="no_such_metric"):
        run_job(cfg)
    return Path(cfg.paths.output_dir)


def test_an_exception_after_training_records_failed_not_done(failed_objective_run):
    from bertlab.utils.run_status import is_finished, read_status

    status = read_status(failed_objective_run)
    assert status["status"] == "failed" and "KeyError" in status["error"] and "no_such_metric" in status["error"]
    assert not (failed_objective_run / "metrics.json").exists()
    assert (failed_objective_run / "metrics.incomplete.json").exists()
    assert not is_finished(failed_objective_run)
    assert not (failed_objective_run / "run.lock").exists()  # released


def _ckpt(run: Path) -> str:
    found = sorted((run / "checkpoints").glob("*.ckpt"))
    assert found, list(run.rglob("*"))
    return str(found[0])


def test_predict_empty_input_gives_an_empty_file(failed_objective_run, make_cfg, tmp_path):
    from bertlab.predict import predict

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "out.jsonl"
    predict(make_cfg([f"ckpt_path={_ckpt(failed_objective_run)}", f"input={empty}", f"output={out}"], "predict"))
    assert out.exists() and out.read_bytes() == b""


def test_a_cws_checkpoint_given_a_question_stops_with_one_line(failed_objective_run):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertlab.predict",
            f"ckpt_path={_ckpt(failed_objective_run)}",
            "question=首都是哪里",
            "passages=[北京是首都]",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert len(errors) == 1 and "SequenceLabelingModule checkpoint, not a reading_comprehension one" in errors[0]


@pytest.mark.parametrize("case", ["same_as_input", "missing_folder", "directory"])
def test_predict_checks_the_output_path_before_loading_the_model(case, make_cfg, tmp_path):
    from bertlab.predict import predict

    inp = tmp_path / "in.txt"
    inp.write_text("我们\n")
    output = {"same_as_input": inp, "missing_folder": tmp_path / "no" / "out.jsonl", "directory": tmp_path}[case]
    expected = {"same_as_input": "is also an input file", "missing_folder": "does not exist", "directory": "directory"}
    # the checkpoint does not exist: an error about it would mean the model was loaded first
    cfg = make_cfg([f"ckpt_path={tmp_path}/none.ckpt", f"input={inp}", f"output={output}"], "predict")
    with pytest.raises(ConfigError, match=expected[case]) as err:
        predict(cfg)
    assert err.value.key == "output" and inp.read_text() == "我们\n"


def test_predict_refuses_a_read_only_output(make_cfg, tmp_path):
    from bertlab.predict import predict

    out = tmp_path / "ro.jsonl"
    out.write_text("old\n")
    out.chmod(0o444)
    if os.access(out, os.W_OK):
        pytest.skip("running as root: read-only files are writable")
    with pytest.raises(ConfigError, match="not writable"):
        predict(make_cfg([f"ckpt_path={tmp_path}/none.ckpt", "text=abc", f"output={out}"], "predict"))


def test_generate_checks_its_output_before_reading_the_checkpoint(make_cfg, tmp_path):
    from bertlab.generate import run

    cfg = make_cfg([f"ckpt_path={tmp_path}/none.ckpt", f"output={tmp_path}/no/texts.txt"], "generate")
    with pytest.raises(ConfigError, match="does not exist"):
        run(cfg)


def test_evaluate_refuses_a_run_folder_that_is_a_file(make_cfg, tmp_path):
    from bertlab.evaluate import evaluate

    cfg = make_cfg([f"ckpt_path={tmp_path}/none.ckpt"], "eval")
    cfg.paths.output_dir = str(tmp_path / "a_file")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        evaluate(cfg)


@pytest.mark.parametrize(
    ("overrides", "key", "text"),
    [
        (["data.max_len=513"], "data.max_len", "do not fit the encoder's 512 positions"),
        (["encoder.max_position_embeddings=64", "data.max_len=100"], "data.max_len", "64 positions"),
        (["encoder.hidden_size=250"], "encoder.hidden_size", "not divisible by encoder.num_attention_heads=4"),
        (["encoder=bert_small_pretrained", "data.max_len=600"], "data.max_len", "bert_small's config.json"),
    ],
)
def test_start_up_check_of_keys_that_must_agree(make_cfg, overrides, key, text):
    from bertlab.utils.hydra_utils import validate_config

    with pytest.raises(ConfigError, match=text) as err:
        validate_config(make_cfg(["experiment=cws_crf", *overrides]))
    assert err.value.key == key


def test_start_up_check_of_a_vocab_that_is_not_the_checkpoints(make_cfg, tmp_path):
    from bertlab.utils.hydra_utils import validate_config

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "bert", "vocab_size": 5, "max_position_embeddings": 512})
    )
    (model / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n")
    with pytest.raises(ConfigError, match="has 3 tokens but the checkpoint .* has 5 embedding rows"):
        validate_config(make_cfg(["experiment=cws_crf", f"encoder.pretrained={model}"]))


def test_every_experiment_passes_the_start_up_check(make_cfg):
    from bertlab.utils.hydra_utils import validate_config

    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        validate_config(make_cfg([f"experiment={path.stem}"]))
    assert issubclass(ConfigError, BertlabError)
