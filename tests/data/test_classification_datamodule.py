"""Sentiment classification DataModule: splits, fixed subset, truncation, batches, scoring, predict protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertlab.data.classification_datamodule import ClassificationDataModule
from bertlab.data.sentiment import read_sentiment
from bertlab.metrics.classification import unseen_accuracy
from bertlab.reporting.seed_sweep import saved_unseen_accuracy
from bertlab.tasks.classification import score_labels
from bertlab.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ZIP = str(ROOT / "data/sentiment/sentiment.zip")
VOCAB = str(ROOT / "data/vocab/bert-base-chinese/vocab.txt")


def make(**kw) -> ClassificationDataModule:
    return ClassificationDataModule(path=ZIP, vocab_file=VOCAB, **kw)


@pytest.fixture(scope="module")
def full():
    dm = make(max_len=64)
    dm.setup("fit")
    return dm


def test_splits_and_labels_are_the_corpus(full):
    assert full.stats["train_examples"] == 16883 and full.stats["val_examples"] == 2111
    assert full.stats["test_examples"] == 2111
    valid = read_sentiment(ZIP, "valid")
    assert full.texts["val"] == [t for t, _ in valid] and full.labels["val"] == [lab for _, lab in valid]
    assert set(full.labels["train"]) == {0, 1}


def test_truncation_keeps_cls_first_chars_and_sep(full):
    tok = full.tokenizer
    for f, text in zip(full.features["train"][:300], full.texts["train"][:300]):
        ids = f["input_ids"]
        assert len(ids) <= 64 and ids[0] == tok.cls_id and ids[-1] == tok.sep_id
        chars = [c for c in text if not c.isspace()]
        assert f["truncated"] == (len(chars) > 62)
        assert ids[1:-1] == [tok.char_id(c) for c in chars[:62]]
    assert full.stats["train_truncated"] > 0


def test_fixed_subset_is_the_same_for_every_run_seed():
    a, b, c = (
        make(max_train_examples=500, seed=1),
        make(max_train_examples=500, seed=2),
        make(max_train_examples=500, seed=1, subset_seed=7),
    )
    for dm in (a, b, c):
        dm.setup("fit")
    assert len(a.texts["train"]) == 500 and a.texts["train"] == b.texts["train"]
    assert a.texts["train"] != c.texts["train"]
    train = set(read_sentiment(ZIP, "train"))
    assert all(pair in train for pair in zip(a.texts["train"], a.labels["train"]))
    rows = [(str(i), i % 2) for i in range(1000)]
    sub = ClassificationDataModule.subset(rows, 50, seed=3)
    idx = [int(t) for t, _ in sub]
    assert len(set(idx)) == 50 and idx == sorted(idx)  # distinct rows, file order kept
    assert ClassificationDataModule.subset(rows, 5000, seed=3) == rows


def test_batches_carry_labels_and_indices():
    dm = make(max_train_examples=100, max_eval_examples=30, batch_size=8, eval_batch_size=16)
    dm.setup("fit")
    seen = []
    for batch in dm.val_dataloader():
        assert batch["input_ids"].shape == batch["attention_mask"].shape
        assert batch["label"].shape == (batch["input_ids"].shape[0],)
        for i, lab in zip(batch["index"].tolist(), batch["label"].tolist()):
            assert dm.labels["val"][i] == lab
            seen.append(i)
    assert sorted(seen) == list(range(30))
    assert sum(b["input_ids"].shape[0] for b in dm.train_dataloader()) == 100


def test_score_decode_and_predict_protocol():
    dm = make(max_eval_examples=4)
    dm.setup("test")
    gold = dm.labels["test"]
    preds = {0: gold[0], 1: 1 - gold[1], 2: gold[2]}  # example 3 has no prediction
    metrics, outputs = score_labels(dm.eval_data("test"), preds)
    in_train = [t in dm.train_texts for t in dm.texts["test"][:3]]
    unseen = [ok for ok, seen in zip([True, False, True], in_train) if not seen]
    assert metrics == {
        "acc": 2 / 3,
        "n_examples": 3,
        "n_correct": 2,
        "n_unseen": len(unseen),
        "acc_unseen": sum(unseen) / len(unseen) if unseen else None,
    }
    assert outputs == [gold[0], 1 - gold[1], gold[2], None]
    dm.set_predict_texts(["很好", "", "太差了 !"])
    batches = list(dm.predict_dataloader())
    assert sorted(i for b in batches for i in b["index"].tolist()) == [0, 1, 2]
    assert "label" not in batches[0]
    decoded = dm.decode("predict", {0: 1, 1: 0, 2: 0})
    assert [dm.format_prediction(t, d) for t, d in zip(dm.texts["predict"], decoded)] == [
        {"text": "很好", "label": 1, "label_name": "positive"},
        {"text": "", "label": 0, "label_name": "negative"},
        {"text": "太差了 !", "label": 0, "label_name": "negative"},
    ]


def test_save_outputs(tmp_path):
    dm = make(max_eval_examples=3)
    dm.setup("test")
    (path,) = dm.save_outputs("test", [1, 0, None], str(tmp_path))
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[1:] for line in lines] == [
        ["1", str(dm.labels["test"][0])],
        ["0", str(dm.labels["test"][1])],
        ["", str(dm.labels["test"][2])],
    ]


def test_trimmed_vocab_and_model_kwargs():
    dm = make(max_train_examples=200, trim_vocab="corpus")
    dm.setup("fit")
    kw = dm.model_kwargs()
    assert kw["num_labels"] == 2 and kw["vocab_keep_ids"] is not None
    assert len(dm.tokenizer) == len(kw["vocab_keep_ids"]) < 21128


def test_bad_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="data.max_len"):
        make(max_len=2)
    with pytest.raises(ConfigError, match="data.label_names"):
        make(label_names=["only"])
    with pytest.raises(ConfigError, match="data.max_train_examples"):
        make(max_train_examples=0)


def test_unseen_accuracy_leaves_out_texts_of_the_training_split():
    dm = make()
    dm.setup("test")
    train = {t for t, _ in read_sentiment(ZIP, "train")}
    assert dm.train_texts == train
    seen = [t in train for t in dm.texts["test"]]
    assert sum(seen) == dm.stats["test_in_train"] == 677 and dm.stats["val_in_train"] == 666
    # right on every seen text, wrong on every unseen one: acc = share seen, acc_unseen = 0
    gold = dm.labels["test"]
    preds = {i: (g if s else 1 - g) for i, (g, s) in enumerate(zip(gold, seen))}
    metrics, _ = score_labels(dm.eval_data("test"), preds)
    assert metrics["acc"] == pytest.approx(677 / 2111) and metrics["acc_unseen"] == 0.0
    assert metrics["n_unseen"] == 2111 - 677
    metrics, _ = score_labels(dm.eval_data("test"), {i: g for i, g in enumerate(gold)})
    assert metrics["acc_unseen"] == 1.0


def test_unseen_accuracy_from_a_saved_predictions_file(tmp_path):
    """Runs that predate the metric: recomputed from their test_labels.tsv, equal to score's."""
    dm = make(max_eval_examples=400)
    dm.setup("test")
    preds = {i: (g if i % 3 else 1 - g) for i, g in enumerate(dm.labels["test"]) if i != 5}
    metrics, outputs = score_labels(dm.eval_data("test"), preds)
    (path,) = dm.save_outputs("test", outputs, str(tmp_path))
    assert saved_unseen_accuracy(path, ZIP) == (pytest.approx(metrics["acc_unseen"]), metrics["n_unseen"])
    assert 0 < metrics["n_unseen"] < 399 and 0 < metrics["acc_unseen"] < 1


def test_unseen_accuracy_is_none_when_undefined():
    assert unseen_accuracy([(1, 1, "a"), (0, 1, "b")], {"a", "b"}) == (None, 0)  # every text seen
    assert unseen_accuracy([(1, 1, "a")], None) == (None, 0)  # training texts unknown
    assert unseen_accuracy([(1, 1, "a"), (None, 1, "c"), (0, 1, "d")], {"x"}) == (0.5, 2)
