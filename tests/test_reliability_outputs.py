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

import importlib
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


def _predict_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bertlab.predict", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_a_cws_checkpoint_given_a_question_stops_with_one_line(failed_objective_run):
    res = _predict_cli(f"ckpt_path={_ckpt(failed_objective_run)}", "question=首都是哪里", "passages=[北京是首都]")
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


def test_evaluate_checks_a_data_override_by_the_rules_of_the_runs_datamodule(failed_objective_run, tmp_path):
    """evaluate's ``+data.key=value`` lands on the checkpoint's data config: the DataModule's value
    rules (VALUE_RULES) refuse a bad value in one line, exit 2, no run folder left."""
    out = tmp_path / "eval"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bertlab.evaluate", f"ckpt_path={_ckpt(failed_objective_run)}", "+data.batch_size=-3"]
    res = subprocess.run([*cmd, f"hydra.run.dir={out}"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert errors == ["bertlab: error: config key 'data.batch_size': must be >= 1, got -3"]
    assert not out.exists()


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


def test_start_up_check_of_the_vocab_file_of_a_checkpoint_without_vocab_txt_also_when_trimming(make_cfg, tmp_path):
    """``data.trim_vocab`` keeps rows of the checkpoint's embedding by their ids in
    ``encoder.vocab_file``: that file must be the checkpoint's vocab whether or not it is trimmed."""
    from bertlab.utils.hydra_utils import validate_config

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"model_type": "bert", "vocab_size": 5, "max_position_embeddings": 512})
    )
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n")
    for trim in ("none", "corpus"):
        cfg = make_cfg(
            [
                "experiment=cws_crf",
                f"encoder.pretrained={model}",
                f"encoder.vocab_file={vocab}",
                f"data.trim_vocab={trim}",
            ]
        )
        with pytest.raises(ConfigError, match="has 3 tokens but the checkpoint .* has 5 embedding rows") as err:
            validate_config(cfg)
        assert err.value.key == "encoder.vocab_file"


def test_every_experiment_passes_the_start_up_check(make_cfg):
    from bertlab.utils.hydra_utils import validate_config

    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        validate_config(make_cfg([f"experiment={path.stem}"]))
    assert issubclass(ConfigError, BertlabError)


# --------------------------------------------------------------------------- issue 27 §7: predict input and output
@pytest.mark.parametrize(
    "text",
    ["价格${oc.env:HOME}元", "价格${x}元", "a\\${x}", "a\\\\${x}b\\", "it's ${a}'", "${"],
)
def test_predict_text_on_the_command_line_is_never_interpolated(text):
    """The CLI path: quote_free_text, then Hydra composes the overrides; text/question/passages
    read back exactly as given (was '价格/root元' and an InterpolationKeyError traceback)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bertlab.predict import quote_free_text

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                "predict", overrides=quote_free_text(["ckpt_path=x.ckpt", f"text={text}", f"question={text}"])
            )
            assert cfg.text == text and cfg.question == text
            if "'" not in text:  # an unquoted list item may not hold a quote (hydra's list syntax)
                cfg = compose("predict", overrides=quote_free_text(["ckpt_path=x.ckpt", f"passages=[{text},b]"]))
                assert list(cfg.passages) == [text, "b"]
    finally:
        GlobalHydra.instance().clear()


@pytest.fixture
def fake_model(monkeypatch):
    """predict() without a checkpoint: load_run gives nothing, predict_texts echoes its inputs and
    records the size of every call."""
    import bertlab.predict as predict_mod

    calls: list[int] = []

    def predict_texts(model, datamodule, texts):
        calls.append(len(texts))
        return [{"text": t, "n": len(t)} for t in texts]

    monkeypatch.setattr(predict_mod, "load_run", lambda *a, **k: (None, None, None))
    monkeypatch.setattr(predict_mod, "predict_texts", predict_texts)
    return calls


def test_predict_output_on_a_full_disk_leaves_the_old_file(fake_model, make_cfg, tmp_path, monkeypatch):
    """Writing out.jsonl fails half-way (ENOSPC): the existing file is kept whole, no temporary
    file is left (was a truncated out.jsonl and the old one destroyed)."""
    import builtins
    import errno

    from bertlab.predict import predict

    inp = tmp_path / "in.txt"
    inp.write_text("".join(f"第{i}行文字\n" for i in range(3000)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text('{"old": true}\n')
    real_open = builtins.open

    class FullDisk:
        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            if self.written + len(data) > 20_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def open_(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return FullDisk(fh) if str(file).startswith(str(tmp_path)) and "w" in mode else fh

    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(OSError, match="No space left"):
        predict(make_cfg([f"ckpt_path={tmp_path}/x.ckpt", f"input={inp}", f"output={out}"], "predict"))
    monkeypatch.undo()
    assert out.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


def test_chunked_holds_one_chunk_of_the_input_at_a_time():
    from bertlab.predict import chunked

    pulled = 0

    def lines():
        nonlocal pulled
        for i in range(2500):
            pulled += 1
            yield i

    seen = []
    for chunk in chunked(lines(), 1000):
        assert len(chunk) <= 1000 and pulled - len(seen) <= 1000  # never more than one chunk read ahead
        seen.extend(chunk)
    assert seen == list(range(2500))
    assert [len(c) for c in chunked(range(2000), 1000)] == [1000, 1000] and list(chunked([], 3)) == []


def test_predict_streams_the_input_in_chunks_with_progress(fake_model, make_cfg, tmp_path, capsys):
    """2,500 input lines: predicted at most CHUNK_LINES at a time, in order, every character kept
    (line separators inside a line included), a plain progress line per 10 % step reached on
    stderr (not a terminal), and JSON lines that str.splitlines() reads one record a line."""
    from bertlab.predict import predict

    lines = [f"第{i}行\u2028半\u2029段\x85尾 ${{x}}" if i % 7 == 0 else f"第{i}行" for i in range(2500)]
    inp = tmp_path / "in.txt"
    inp.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    out = tmp_path / "out.jsonl"
    written = predict(make_cfg([f"ckpt_path={tmp_path}/x.ckpt", f"input={inp}", f"output={out}"], "predict"))
    assert max(fake_model) <= 1000 and sum(fake_model) == 2500  # bertlab.predict.CHUNK_LINES
    assert written == 2500
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 2500  # was 2500 + 3 x 358 pieces: U+2028, U+2029, U+0085 written raw
    assert [json.loads(line)["text"] for line in text.splitlines()] == lines
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("predict: ")]
    assert progress and progress[-1] == "predict: 2500/2500 lines (100%)", progress


@pytest.mark.parametrize("tool", ["predict", "eval", "generate"])
def test_threads_is_accepted_by_every_tool(tool, make_cfg, tmp_path):
    """threads=2 sets torch's intra-op threads before the (here missing) checkpoint is read."""
    import torch

    from bertlab.utils.errors import CheckpointError

    module, name = {
        "predict": ("predict", "predict"),
        "eval": ("evaluate", "evaluate"),
        "generate": ("generate", "run"),
    }[tool]
    run = getattr(importlib.import_module(f"bertlab.{module}"), name)
    extra = ["text=abc"] if tool == "predict" else []
    cfg = make_cfg([f"ckpt_path={tmp_path}/none.ckpt", "threads=2", *extra], tool)
    if tool == "eval":
        cfg.paths.output_dir = str(tmp_path / "eval")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with pytest.raises(CheckpointError):
            run(cfg)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_predict_cli_chunked_output_equals_the_unchunked_result(failed_objective_run, tmp_path):
    """3,000 lines (4 chunks) through the CLI with a tiny checkpoint: the same records as one
    unchunked predict_texts call, one JSON line each, progress lines on stderr."""
    from bertlab.runs import load_run, predict_texts

    base = [
        "我们在北京工作",
        "他说明天会更好",
        "价格${x}元",
        "中国人民\u2028爱和平",
        "今天的天气很好。这是一个新的开始",
    ]
    lines = [f"{base[i % len(base)]}{i}" for i in range(3000)]
    assert len(lines) > 2 * 1000  # several chunks of bertlab.predict.CHUNK_LINES
    inp, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ckpt = _ckpt(failed_objective_run)
    res = _predict_cli(f"ckpt_path={ckpt}", f"input={inp}", f"output={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    model, datamodule, _ = load_run(ckpt)
    expected = predict_texts(model, datamodule, lines)
    got = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in got] == expected
    assert "predict: 3000/3000 lines (100%)" in res.stderr.splitlines(), res.stderr[-2000:]
