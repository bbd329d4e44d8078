from __future__ import annotations

import pytest

from bertlab.data.cws_datamodule import CwsDataModule, words_from_tags
from bertlab.data.samplers import BucketBatchSampler


def test_words_from_tags_uses_s_b_as_word_starts_and_spaces_as_boundaries():
    text = "我爱北京 天安门"
    tags = [0, 0, 1, 3, None, 1, 2, 3]
    assert words_from_tags(text, tags) == ["我", "爱", "北京", "天安门"]
    # a bad model's tags (m after s, e at a start) still give words covering every char
    assert "".join(words_from_tags("abcd", [2, 3, 2, 0])) == "abcd"


def test_bucket_sampler_covers_every_index_once_and_buckets_lengths():
    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    s = BucketBatchSampler(lengths, 16, shuffle=True, pool_batches=10, seed=3)
    batches = list(s)
    assert len(batches) == len(s)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 15  # random batches would spread over ~90
    s.set_epoch(1)
    assert list(s) != batches  # a new order every epoch
    s.set_epoch(0)
    assert list(s) == batches  # ... deterministic given seed + epoch
    ev = list(BucketBatchSampler(lengths, 16, shuffle=False))
    assert sorted(i for b in ev for i in b) == list(range(1000)) and len(ev) == 63


@pytest.fixture(scope="module")
def dm():
    root = "data/cws"
    d = CwsDataModule(
        train_files=[f"{root}/peoples_daily_1998/cv-5-filter_test.txt.xz"],
        test_raw_file=f"{root}/pku_sighan2005/pku_test.utf8.xz",
        test_gold_file=f"{root}/pku_sighan2005/pku_test_gold.utf8.xz",
        train_words_file=f"{root}/pku_sighan2005/pku_training_words.utf8.xz",
        vocab_file="data/vocab/bert-base-chinese/vocab.txt",
        max_len=64,
        max_train_chars=30000,
    )
    d.setup("fit")
    return d


def test_features_fit_max_len_and_tags_align(dm):
    for f in dm.features["train"]:
        assert len(f["input_ids"]) <= 64 and len(f["labels"]) == len(f["input_ids"])
        assert f["labels"][0] == 0 and f["labels"][-1] == 0
    assert sum(len(f["input_ids"]) - 2 for f in dm.features["train"]) <= 30000
    assert all(len(f["input_ids"]) <= 64 for f in dm.features["test"])


def test_gold_tags_decode_to_perfect_scores_with_every_line_kept(dm):
    # feed the gold tags of the test set back in: F1 must be exactly 1 and all 1,945 lines kept
    from bertlab.data.cws import words_to_tags

    preds = {}
    for idx, piece in enumerate(dm.pieces["test"]):
        gold_words = dm.gold["test"][piece.sent]
        char_tags = words_to_tags(gold_words)
        offsets = dm.features["test"][idx]["offsets"]
        preds[idx] = [0 if o < 0 else char_tags[piece.start + o] for o in offsets]
    from bertlab.tasks.sequence_labeling import score_tagging

    metrics, words = score_tagging(dm.eval_data("test"), preds)
    assert metrics["f1"] == 1.0 and metrics["oov_recall"] == 1.0
    assert len(words) == len(dm.texts["test"]) == 1945
    assert ["".join(w) for w in words] == ["".join(t.split()) for t in dm.texts["test"]]
    long_lines = [t for t in dm.texts["test"] if len(t) > 62]
    assert long_lines, "the test set has lines longer than max_len: they are cut and rejoined"


def test_bucket_sampler_resumes_at_its_position():
    lengths = [(i * 7) % 50 + 1 for i in range(500)]
    ref = BucketBatchSampler(lengths, 8, seed=5)
    ref.set_epoch(2)
    full = list(ref)
    s = BucketBatchSampler(lengths, 8, seed=5)
    s.set_epoch(2)
    it = iter(s)
    head = [next(it) for _ in range(17)]
    state = s.state_dict()
    resumed = BucketBatchSampler(lengths, 8, seed=5)
    resumed.load_state_dict(state)
    assert head + list(resumed) == full
    assert list(resumed) == full  # the skip applies to one epoch only


def test_fixed_padding_pads_training_batches_to_max_len_only(dm):
    dm.fixed_padding = True
    try:
        train = list(dm.train_dataloader())
        val = next(iter(dm.val_dataloader()))
    finally:
        dm.fixed_padding = False
    assert all(b["input_ids"].shape[1] == 64 for b in train)
    assert sum(int(b["attention_mask"].sum()) for b in train) == sum(len(f["input_ids"]) for f in dm.features["train"])
    assert val["input_ids"].shape[1] == int(val["attention_mask"].sum(1).max())  # evaluation: dynamic padding
    dynamic = list(dm.train_dataloader())
    assert any(b["input_ids"].shape[1] < 64 for b in dynamic)
    # the same batches in the same order: only the padding differs
    assert [b["attention_mask"].sum(1).tolist() for b in dynamic] == [
        b["attention_mask"].sum(1).tolist() for b in train
    ]


def test_no_bucketing_with_one_batch_pools():
    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    batches = list(BucketBatchSampler(lengths, 16, shuffle=True, pool_batches=1, seed=3))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread > 60  # random batches: no length bucketing
