"""One test per row of the bad-input table in docs/reliability.md.

CLI rows run the real entry points (``python -m bertlab.train`` / ``evaluate`` / ``predict``)
in subprocesses (started together, so the file costs about one slow CLI start per core) and
check: exit status 2, exactly one ``bertlab: error:`` line naming the file and line (or the
key), no traceback, and no run folder that looks finished (no metrics.json; a status.json,
if any, says failed). Handled-and-counted rows (over-long text, characters outside the
vocab, an entity that does not occur in its text) check the handling and the count.
"""

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

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
VOCAB = ROOT / "data" / "vocab" / "bert-base-chinese" / "vocab.txt"

PD_LINES = [
    "迈向  充满  希望  的  新  世纪  。",
    "中国  人民  爱  和平  。",
    "我们  在  北京  工作  。",
    "他  说  ，  明天  会  更好  。",
    "今天  的  天气  很  好  。",
    "这  是  一个  新  的  开始  。",
] * 3
GOLD_LINES = ["我们  爱  北京  。", "明天  的  世纪  。"]


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_input")
    f = {
        "train": _write(d / "train.txt", "\n".join(PD_LINES) + "\n"),
        "gold": _write(d / "gold.txt", "\n".join(GOLD_LINES) + "\n"),
        "raw": _write(d / "raw.txt", "\n".join(line.replace(" ", "") for line in GOLD_LINES) + "\n"),
        "words": _write(d / "words.txt", "我们\n北京\n"),
        "empty": _write(d / "empty.txt", ""),
        "non_utf8": _write(
            d / "latin1.txt", ("\n".join(PD_LINES[:2]) + "\n").encode() + "caf\xe9  au  lait\n".encode("latin-1")
        ),
    }
    # readable files of another format (issue 21): CoNLL NER and JSON lines as segmentation data
    f["conll"] = _write(
        d / "ner.char.bmes",
        "".join(f"{c} {'B-LOC' if i % 2 else 'O'}\n" for i, c in enumerate("北京是中国的首都我们在上海工作" * 3)),
    )
    f["jsonl"] = _write(
        d / "records.json",
        "".join(json.dumps({"text": line, "label": 1}, ensure_ascii=False) + "\n" for line in PD_LINES),
    )
    f["input"] = _write(d / "input.txt", "我们爱北京\n")
    whole = lzma.compress(("\n".join(PD_LINES * 40) + "\n").encode())
    f["truncated_xz"] = _write(d / "cut.txt.xz", whole[: len(whole) // 2])
    # NER (Resume layout: <data_dir>/ner/resume/{train,dev,test}.char.bmes)
    good = "张 B-NAME\n三 E-NAME\n是 O\n人 O\n\n李 S-NAME\n好 O\n"
    ner = d / "ner_bad_tag"
    for name in ("dev", "test"):
        _write(ner / "ner" / "resume" / f"{name}.char.bmes", good)
    _write(ner / "ner" / "resume" / "train.char.bmes", good + "\n王 B-FOO\n五 E-FOO\n")
    f["ner_bad_tag"], f["ner_bad_tag_file"] = ner, ner / "ner" / "resume" / "train.char.bmes"
    ner2 = d / "ner_truncated"
    for name in ("dev", "test"):
        _write(ner2 / "ner" / "resume" / f"{name}.char.bmes", good)
    _write(ner2 / "ner" / "resume" / "train.char.bmes", good + "\n王 S-NAME\n五")  # cut mid-record, no newline
    f["ner_truncated"], f["ner_truncated_file"] = ner2, ner2 / "ner" / "resume" / "train.char.bmes"
    # triples (LIC2019 JSON lines)
    rec = {
        "text": "《宜兴紫砂图典》由故宫出版社出版",
        "spo_list": [{"predicate": "出版社", "object": "故宫出版社", "subject": "宜兴紫砂图典"}],
    }
    ok = json.dumps(rec, ensure_ascii=False)
    f["bad_json"] = _write(d / "bad_json.json", ok + "\n" + ok[:-5] + "\n")
    f["no_text"] = _write(d / "no_text.json", ok + "\n" + json.dumps({"spo_list": []}) + "\n")
    f["bad_predicate"] = _write(
        d / "bad_predicate.json", ok + "\n" + ok.replace('出版社", "object"', '印刷厂", "object"') + "\n"
    )
    # checkpoints: one of another task, one cut in half, a folder that is not a model
    other = {
        "state_dict": {},
        "global_step": 3,
        "bertlab": {"config": {"model": {"_target_": "bertlab.tasks.triples.TripleExtractionModule"}}},
    }
    torch.save(other, d / "other_task.ckpt")
    f["other_task"] = d / "other_task.ckpt"
    blob = (d / "other_task.ckpt").read_bytes()
    f["corrupt_ckpt"] = _write(d / "corrupt.ckpt", blob[: len(blob) // 2])
    f["not_a_model"] = d / "not_a_model"
    _write(f["not_a_model"] / "README.md", "just a folder\n")
    # a checkpoint whose pickle would run `touch <marker>` (tests/test_checkpoint_safety.py)
    from test_checkpoint_safety import write_malicious_checkpoint

    f["evil_marker"] = d / "evil_code_ran"
    f["evil_ckpt"] = write_malicious_checkpoint(d / "evil.ckpt", f["evil_marker"], where="hparams")
    return f


def _cws(f: dict[str, Path], **over: Path) -> list[str]:
    paths = {"train": f["train"], "gold": f["gold"], "raw": f["raw"], "words": f["words"], **over}
    return [
        "experiment=cws_crf",
        f"data.train_files=[{paths['train']}]",
        f"data.test_gold_file={paths['gold']}",
        f"data.test_raw_file={paths['raw']}",
        f"data.train_words_file={paths['words']}",
        "data.val_every=2",
    ]


def _triples(f: dict[str, Path], train: Path) -> list[str]:
    return ["experiment=triples", f"data.train_file={train}", "data.max_eval_records=5"]


#: row -> (module, args, expected text of the error line)
def _cases(f: dict[str, Path]) -> dict[str, tuple[str, list[str], str]]:
    return {
        "missing_file": (
            "train",
            _cws(f, gold=f["gold"].with_name("missing.txt")),
            f"{f['gold'].with_name('missing.txt')}: file not found",
        ),
        "empty_file": ("train", _cws(f, train=f["empty"]), f"{f['empty']}: file holds no sentence"),
        "non_utf8": ("train", _cws(f, train=f["non_utf8"]), f"{f['non_utf8']}:3: not valid UTF-8"),
        "truncated_compressed": ("train", _cws(f, train=f["truncated_xz"]), f"{f['truncated_xz']}:"),
        "truncated_last_line": (
            "train",
            ["experiment=ner_crf", "data=ner_resume", f"data.data_dir={f['ner_truncated']}"],
            f"{f['ner_truncated_file']}:10: expected 'char TAG'",
        ),
        "tag_not_in_scheme": (
            "train",
            ["experiment=ner_crf", "data=ner_resume", f"data.data_dir={f['ner_bad_tag']}"],
            f"{f['ner_bad_tag_file']}:9: tag 'B-FOO' is not one of the configured labels",
        ),
        "malformed_json": ("train", _triples(f, f["bad_json"]), f"{f['bad_json']}:2: not valid JSON"),
        "missing_field": ("train", _triples(f, f["no_text"]), f"{f['no_text']}:2: record without a string 'text'"),
        "predicate_not_in_schema": (
            "train",
            _triples(f, f["bad_predicate"]),
            f"{f['bad_predicate']}:2: predicate '印刷厂' is not in the schema",
        ),
        "unknown_key": (
            "train",
            ["experiment=cws_crf", "data.batch_sizee=3"],
            "config key 'data.batch_sizee' does not exist",
        ),
        "wrong_type": (
            "train",
            ["experiment=cws_crf", "trainer.max_epochs=abc"],
            "config key 'trainer.max_epochs': expected an integer",
        ),
        "bad_value": (
            "train",
            ["experiment=cws_crf", "data.batch_size=-3"],
            "config key 'data.batch_size': must be >= 1, got -3",
        ),
        "checkpoint_of_another_task": (
            "train",
            [*_cws(f), f"ckpt_path={f['other_task']}"],
            f"ckpt_path: {f['other_task']} is a TripleExtractionModule checkpoint, this run trains a SequenceLabelingModule",
        ),
        "corrupt_checkpoint_resume": (
            "train",
            [*_cws(f), f"ckpt_path={f['corrupt_ckpt']}"],
            f"ckpt_path: {f['corrupt_ckpt']} is not a complete checkpoint",
        ),
        "corrupt_checkpoint_evaluate": (
            "evaluate",
            [f"ckpt_path={f['corrupt_ckpt']}"],
            f"ckpt_path: {f['corrupt_ckpt']} is not a readable checkpoint",
        ),
        "missing_checkpoint_predict": (
            "predict",
            [f"ckpt_path={f['corrupt_ckpt']}.nope", "text=abc"],
            f"ckpt_path: no such file: {f['corrupt_ckpt']}.nope",
        ),
        "unsafe_checkpoint_resume": (
            "train",
            [*_cws(f), f"ckpt_path={f['evil_ckpt']}"],
            f"ckpt_path: {f['evil_ckpt']} holds pickled objects other than tensors and plain data",
        ),
        "unsafe_checkpoint_evaluate": (
            "evaluate",
            [f"ckpt_path={f['evil_ckpt']}"],
            f"ckpt_path: {f['evil_ckpt']} holds pickled objects other than tensors and plain data",
        ),
        "unsafe_checkpoint_predict": (
            "predict",
            [f"ckpt_path={f['evil_ckpt']}", "text=abc"],
            f"ckpt_path: {f['evil_ckpt']} holds pickled objects other than tensors and plain data",
        ),
        "conll_as_segmentation": (
            "train",
            _cws(f, train=f["conll"]),
            f"{f['conll']}:1: expected segmented text (one sentence a line, words separated by spaces), "
            "found a CoNLL 'char TAG' line",
        ),
        "jsonl_as_segmentation": (
            "train",
            _cws(f, train=f["jsonl"]),
            f"{f['jsonl']}:1: expected segmented text (one sentence a line, words separated by spaces), found a JSON dict",
        ),
        "raw_as_gold": (
            "train",
            _cws(f, gold=f["raw"]),
            f"{f['raw']}:1: expected segmented text (one sentence a line, words separated by spaces), "
            "found unsegmented text",
        ),
        "max_len_above_positions": (
            "train",
            ["experiment=cws_crf", "data.max_len=600"],
            "config key 'data.max_len': 600 tokens (special tokens [CLS]/[SEP] included) do not fit the encoder's 512",
        ),
        "heads_do_not_divide_hidden": (
            "train",
            ["experiment=cws_crf", "encoder.hidden_size=250"],
            "config key 'encoder.hidden_size': 250 is not divisible by encoder.num_attention_heads=4",
        ),
        "output_is_input": (
            "predict",
            [f"ckpt_path={f['corrupt_ckpt']}", f"input={f['input']}", f"output={f['input']}"],
            f"config key 'output': {f['input']} is also an input file",
        ),
        "output_folder_missing": (
            "predict",
            [f"ckpt_path={f['corrupt_ckpt']}", "text=abc", f"output={f['input'].parent}/no/such/out.jsonl"],
            f"config key 'output': {f['input'].parent}/no/such/out.jsonl: the folder",
        ),
        "pretrained_not_a_model": (
            "train",
            [*_cws(f), f"encoder.pretrained={f['not_a_model']}"],
            f"encoder.pretrained='{f['not_a_model']}' could not be loaded: no config.json",
        ),
        # issue 27 §6: values that used to slip through (on the tiny CWS files, so the old code trains fast)
        **{name: ("train", [*_cws(f), *args], expected) for name, (args, expected) in PRECHECK_VALUES.items()},
        "max_train_chars_selects_nothing": (
            "train",
            [*_cws(f), "data.max_train_chars=3"],
            "config key 'data.max_train_chars': 3 characters select none of the",
        ),
        "val_check_interval_above_an_epoch": (
            "train",
            [*_cws(f), "trainer.val_check_interval=50"],
            "config key 'trainer.val_check_interval': 50 training batches is more than an epoch (1 batches)",
        ),
    }


#: issue 27 §6: values refused by the start-up check (precheck_overrides): row -> (overrides, error)
PRECHECK_VALUES: dict[str, tuple[list[str], str]] = {
    "negative_final_lr_factor": (
        ["scheduler=warmup_linear", "scheduler.final_factor=-5"],
        "config key 'scheduler.final_factor': must be >= 0, got -5",
    ),
    "val_check_interval_zero": (
        ["trainer.val_check_interval=0"],
        "config key 'trainer.val_check_interval': must be a fraction of an epoch in (0, 1]",
    ),
    "val_check_interval_float_above_one": (
        ["trainer.val_check_interval=1.5"],
        "config key 'trainer.val_check_interval': must be a fraction of an epoch in (0, 1]",
    ),
    "val_every_zero": (["data.val_every=0"], "config key 'data.val_every': must be >= 1, got 0"),
    "unknown_precision": (["trainer.precision=bogus"], "config key 'trainer.precision': must be one of 32-true |"),
    "ema_decay_above_one": (
        ["+callbacks.ema._target_=bertlab.callbacks.ema.EMA", "+callbacks.ema.decay=1.5"],
        "config key 'callbacks.ema.decay': must be >= 0 and < 1, got 1.5",
    ),
    "callback_without_target": (
        ["+callbacks.ema.decay=0.9"],
        "config key 'callbacks.ema': has no _target_ (keys: decay), so it is not a callback and would be ignored",
    ),
    "limit_train_batches_zero": (
        ["trainer.limit_train_batches=0"],
        "config key 'trainer.limit_train_batches': 0 trains nothing (train=true)",
    ),
    "max_steps_zero": (["trainer.max_steps=0"], "config key 'trainer.max_steps': 0 trains nothing (train=true)"),
    "neither_train_nor_test": (
        ["train=false", "test=false"],
        "config key 'train': train=false and test=false: the run would do nothing",
    ),
    "infinite_lr": (["optimizer.lr=inf"], "config key 'optimizer.lr': must be a finite number, got inf"),
    "negative_lr_multiplier": (
        ["optimizer.lr_multipliers.crf=-1"],
        "config key 'optimizer.lr_multipliers.crf': must be > 0, got -1",
    ),
    "trim_vocab_typo": (
        ["data.trim_vocab=corpuss"],
        "config key 'data.trim_vocab': must be one of none | simplified | corpus, got 'corpuss'",
    ),
}


@pytest.fixture(scope="module")
def cli_results(files, tmp_path_factory):
    """``cli_results(row) -> (CompletedProcess, run folder)``. In one pytest process the first call runs
    every CLI row, two at a time; under pytest-xdist a worker runs only the rows it is given (the
    workers are the parallelism, and no row runs twice)."""
    runs = tmp_path_factory.mktemp("runs")
    cases = _cases(files)
    done: dict[str, tuple[subprocess.CompletedProcess, Path]] = {}

    def one(name):
        module, args, _ = cases[name]
        run_dir = runs / name
        extra = [] if module == "predict" else [f"hydra.run.dir={run_dir}", f"paths.log_dir={runs}"]
        cmd = [sys.executable, "-m", f"bertlab.{module}", *args, *extra]
        return name, (subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300), run_dir)

    def get(row: str):
        if row not in done:
            if os.environ.get("PYTEST_XDIST_WORKER"):
                done.update([one(row)])
            else:
                with ThreadPoolExecutor(max_workers=2) as pool:
                    done.update(pool.map(one, cases))
        return done[row]

    return get


CLI_ROWS = [
    "missing_file",
    "empty_file",
    "non_utf8",
    "truncated_compressed",
    "truncated_last_line",
    "tag_not_in_scheme",
    "malformed_json",
    "missing_field",
    "predicate_not_in_schema",
    "unknown_key",
    "wrong_type",
    "bad_value",
    "checkpoint_of_another_task",
    "corrupt_checkpoint_resume",
    "corrupt_checkpoint_evaluate",
    "missing_checkpoint_predict",
    "unsafe_checkpoint_resume",
    "unsafe_checkpoint_evaluate",
    "unsafe_checkpoint_predict",
    "pretrained_not_a_model",
    "conll_as_segmentation",
    "jsonl_as_segmentation",
    "raw_as_gold",
    "max_len_above_positions",
    "heads_do_not_divide_hidden",
    "output_is_input",
    "output_folder_missing",
    *PRECHECK_VALUES,
    "max_train_chars_selects_nothing",
    "val_check_interval_above_an_epoch",
]


@pytest.mark.slow
@pytest.mark.parametrize("row", CLI_ROWS)
def test_cli_stops_with_one_line(row, files, cli_results):
    expected = _cases(files)[row][2]
    res, run_dir = cli_results(row)
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(errors) == 1 and expected in errors[0], (errors, res.stderr[-3000:])
    assert "Traceback" not in res.stderr
    assert not (run_dir / "metrics.json").exists()
    if (run_dir / "status.json").exists():
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "failed" and expected in status["error"]
    assert not files["evil_marker"].exists(), "a checkpoint's pickled code ran"
    if _cases(files)[row][0] != "predict":  # a refused start leaves no run folder (issue 27 row 27f)
        assert not run_dir.exists(), sorted(run_dir.rglob("*"))
    if row in PRECHECK_VALUES:  # refused before Hydra creates the run folder, before Lightning starts
        assert "GPU available" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr[-3000:]


# --------------------------------------------------------------------------- handled and counted
def _cws_dm(tmp_path: Path, train_lines: list[str], gold_lines: list[str], **kw):
    from bertlab.data.cws_datamodule import CwsDataModule

    train = _write(tmp_path / "t.txt", "\n".join(train_lines) + "\n")
    gold = _write(tmp_path / "g.txt", "\n".join(gold_lines) + "\n")
    raw = _write(tmp_path / "r.txt", "\n".join(g.replace(" ", "") for g in gold_lines) + "\n")
    words = _write(tmp_path / "w.txt", "我们\n")
    dm = CwsDataModule([str(train)], str(raw), str(gold), str(words), vocab_file=str(VOCAB), val_every=2, **kw)
    dm.setup("fit")
    return dm


def test_over_long_text_is_split_and_every_character_kept(tmp_path):
    long_words = ("我们  在  北京  工作  ，  " * 30).split()
    long_train = "  ".join(("你们  在  上海  学习  ，  " * 30).split())
    dm = _cws_dm(tmp_path, PD_LINES + [long_train], ["  ".join(long_words)], max_len=32)
    assert dm.stats["train_features"] > dm.stats["train_sentences"]  # the long sentence became several inputs
    assert all(len(f["input_ids"]) <= 32 for feats in dm.features.values() for f in feats)
    assert dm.stats["test_features"] > 1 and len(dm.texts["test"]) == 1
    # the pieces cover the whole test text: perfect tags give back every word
    gold = dm.gold["test"][0]
    from bertlab.data.cws import words_to_tags

    tags = iter(words_to_tags(gold))
    char_tags = [[None if ch.isspace() else next(tags) for ch in dm.texts["test"][0]]]
    from bertlab.tasks.sequence_labeling import score_char_tags

    metrics, out = score_char_tags(dm.eval_data("test"), char_tags)
    assert out[0] == gold and metrics["f1"] == 1.0


def test_characters_outside_the_vocab_become_unk_and_are_counted(tmp_path):
    rare = "𠀀"  # CJK extension B: not in BERT's vocab
    dm = _cws_dm(tmp_path, PD_LINES + [f"我们  {rare}{rare}  。"], GOLD_LINES)
    assert dm.stats["train_unk_tokens"] >= 2
    enc = dm.tokenizer.encode(f"我{rare}")
    assert enc.ids[2] == dm.tokenizer.unk_id
    # predictions keep the original characters (offsets into the input text)
    dm.set_predict_texts([f"我{rare}们"])
    rec = dm.format_prediction(dm.texts["predict"][0], [0, 0, 0])
    assert "".join(w["word"] for w in rec["words"]) == f"我{rare}们"


def test_triple_whose_entity_is_not_in_the_text_is_dropped_and_counted(tmp_path):
    from bertlab.data.triples_datamodule import TripleDataModule

    recs = [
        {
            "text": "《宜兴紫砂图典》由故宫出版社出版",
            "spo_list": [{"predicate": "出版社", "object": "故宫出版社", "subject": "宜兴紫砂图典"}],
        },
        {
            "text": "《宜兴紫砂图典》由故宫出版社出版",
            "spo_list": [{"predicate": "出版社", "object": "人民出版社", "subject": "宜兴紫砂图典"}],
        },
    ]
    train = _write(tmp_path / "train.json", "\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n")
    schema = ROOT / "data/triples/lic2019/all_50_schemas.xz"
    dev = _write(tmp_path / "dev.json", train.read_text(encoding="utf-8"))
    dm = TripleDataModule(str(train), str(dev), str(schema), vocab_file=str(VOCAB), val_records=1)
    dm.setup("fit")
    assert dm.stats["train_triples_not_found"] == 1


def test_mrc_answer_not_in_its_context_names_the_file_and_question(tmp_path):
    from bertlab.data.mrc import read_cmrc
    from bertlab.utils.errors import DataError

    data = {
        "data": [
            {
                "paragraphs": [
                    {
                        "id": "p1",
                        "context": "北京是中国的首都。",
                        "qas": [
                            {"id": "q1", "question": "首都是哪里？", "answers": [{"text": "上海", "answer_start": 0}]}
                        ],
                    }
                ]
            }
        ]
    }
    path = _write(tmp_path / "cmrc.json", json.dumps(data, ensure_ascii=False))
    with pytest.raises(DataError, match=r"cmrc\.json: .*q1"):
        read_cmrc(str(path))


# --------------------------------------------------------------------------- issue 27 §6: checks that need the data
@pytest.mark.parametrize(
    ("overrides", "batches", "stats", "error"),
    [
        (["data.max_train_chars=10"], 0, {}, "config key 'data.max_train_chars': 10 characters select no training"),
        ([], 0, {}, "config key 'data': the training set is empty"),
        (
            [],
            5,
            {"train_triples": 7, "train_triples_not_found": 6, "train_triples_beyond_max_len": 1},
            "config key 'data.train_file': none of the 7 training triples was located in its text",
        ),
        (["trainer.val_check_interval=6"], 5, {}, "6 training batches is more than an epoch (5 batches)"),
        (["trainer.val_check_interval=4", "trainer.limit_train_batches=3"], 5, {}, "more than an epoch (3 batches)"),
        (["trainer.val_check_interval=3", "trainer.limit_train_batches=0.5"], 5, {}, "more than an epoch (2 batches)"),
        (["trainer.val_check_interval=6", "trainer.check_val_every_n_epoch=null"], 5, {}, None),
        (["trainer.val_check_interval=5"], 5, {"train_triples": 7, "train_triples_not_found": 6}, None),
    ],
)
def test_training_loader_must_train_something(make_cfg, overrides, batches, stats, error):
    from bertlab.utils.errors import ConfigError
    from bertlab.utils.startup_checks import check_training_batches

    cfg = make_cfg(["experiment=cws_crf", *overrides])
    if error is None:
        check_training_batches(cfg, batches, stats)
        return
    with pytest.raises(ConfigError) as err:
        check_training_batches(cfg, batches, stats)
    assert error in f"config key '{err.value.key}': {err.value.message}"


def test_a_character_budget_that_selects_nothing_names_the_key(tmp_path):
    from bertlab.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="3 characters select none of the 9 training examples") as err:
        _cws_dm(tmp_path, PD_LINES, GOLD_LINES, max_train_chars=3)  # 18 lines, every 2nd one for validation
    assert err.value.key == "data.max_train_chars"
