"""Triple readers (LIC2019, DuIE 2.0, schemas), errors with file:line, span search and
location counts, subject sampling, batches, splits and decoding back to character offsets."""

from __future__ import annotations

import json
import lzma
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from bertlab.data.tokenization import CharTokenizer
from bertlab.data.triples import read_schema, read_triples
from bertlab.data.triples_datamodule import (
    TripleCollator,
    TripleDataModule,
    encode_cut,
    locate_triples,
    sample_subject,
    search,
)
from bertlab.tasks.triple_extraction import score_triples
from bertlab.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
VOCAB = str(DATA / "vocab/bert-base-chinese/vocab.txt")
LIC = DATA / "triples/lic2019"
DUIE = DATA / "triples/duie2_sample"


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer(VOCAB)


def _write(path: Path, lines: list) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


# ----------------------------------------------------------------------------- readers
def test_shipped_files_read_with_the_expected_counts():
    preds = read_schema(LIC / "all_50_schemas.xz")
    assert len(preds) == 49  # 50 schemas, one predicate twice (the post dedups the same way)
    train, stats = read_triples(LIC / "train_data.json.xz", preds)
    dev, _ = read_triples(LIC / "dev_data.json.xz", preds)
    assert (len(train), len(dev)) == (2601, 1000)
    assert stats["triples"] == sum(len(r.spo_list) for r in train) == 5293
    assert train[0].spo_list == [("宜兴紫砂图典", "出版社", "故宫出版社")] and train[0].line == 1

    duie_preds = read_schema(DUIE / "duie_schema.json.xz")  # one pretty-printed JSON array
    assert len(duie_preds) == 48
    duie, dstats = read_triples(DUIE / "train_data_5000.json.xz", duie_preds)
    assert len(duie) == 5000
    assert duie[0].spo_list == [("邪少兵王", "作者", "冰火未央")]  # object {"@value": "冰火未央"}
    assert dstats["object_slots_ignored"] > 0  # e.g. inWork of 饰演


def test_schema_formats_and_errors(tmp_path):
    lines = _write(tmp_path / "s1", [{"predicate": "作者"}, {"predicate": "歌手"}, {"predicate": "作者"}])
    assert read_schema(lines) == ["作者", "歌手"]
    arr = tmp_path / "s2.json"
    arr.write_text(json.dumps([{"predicate": "a", "object_type": {"@value": "x"}}, {"predicate": "b"}], indent=2))
    assert read_schema(arr) == ["a", "b"]
    bad = _write(tmp_path / "s3", [{"predicate": "a"}, "{oops"])
    with pytest.raises(DataError, match=r"s3:2: not valid JSON"):
        read_schema(bad)
    nopred = _write(tmp_path / "s4", [{"predicate": "a"}, {"object_type": "x"}])
    with pytest.raises(DataError, match=r"s4:2: .*predicate"):
        read_schema(nopred)
    (tmp_path / "empty").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_schema(tmp_path / "empty")


@pytest.mark.parametrize(
    "bad_line,message",
    [
        ("this is not json", r":2: not valid JSON"),
        ({"spo_list": []}, r":2: record without a string 'text'"),
        ({"text": "abc"}, r":2: record without 'spo_list'"),
        ({"text": "abc", "spo_list": {}}, r":2: 'spo_list' must be a list"),
        ({"text": "abc", "spo_list": [{}]}, r":2: spo_list entry 0 is empty"),
        ({"text": "abc", "spo_list": [{"subject": "a", "predicate": "p"}]}, r":2: spo_list entry 0 lacks object"),
        ({"text": "abc", "spo_list": [{"subject": " ", "predicate": "p", "object": "b"}]}, r":2: empty subject"),
        (
            {"text": "abc", "spo_list": [{"subject": "a", "predicate": "nope", "object": "b"}]},
            r":2: predicate 'nope' is not in the schema",
        ),
        (
            {"text": "abc", "spo_list": [{"subject": "a", "predicate": "p", "object": {"x": "b"}}]},
            r":2: object is an object without '@value'",
        ),
        (
            {"text": "abc", "spo_list": [{"subject": "a", "predicate": "p", "object": 3}]},
            r":2: object must be a string",
        ),
    ],
)
def test_malformed_records_name_file_and_line(tmp_path, bad_line, message):
    good = {"text": "abc", "spo_list": [{"subject": "a", "predicate": "p", "object": "b"}]}
    path = _write(tmp_path / "data.json", [good, bad_line])
    with pytest.raises(DataError, match="data.json" + message):
        read_triples(path, ["p"])


def test_reader_skips_blank_lines_and_allows_unlabelled_records_when_asked(tmp_path):
    path = _write(tmp_path / "d.json", [{"text": "abc", "spo_list": []}, "", {"text": "xyz"}])
    recs, stats = read_triples(path, ["p"], require_spo=False)
    assert [(r.text, r.line) for r in recs] == [("abc", 1), ("xyz", 3)]
    assert stats["records"] == 2 and stats.get("triples", 0) == 0


def test_compressed_file_is_read_transparently(tmp_path):
    path = tmp_path / "d.json.xz"
    with lzma.open(path, "wt", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "text": "周杰伦唱七里香",
                    "spo_list": [{"subject": "七里香", "predicate": "歌手", "object": "周杰伦"}],
                },
                ensure_ascii=False,
            )
            + "\n"
        )
    recs, _ = read_triples(path, ["歌手"])
    assert recs[0].spo_list == [("七里香", "歌手", "周杰伦")]


# ----------------------------------------------------------------------------- span search
def test_search_is_the_first_occurrence():
    assert search([2, 3], [1, 2, 3, 2, 3]) == 1
    assert search([3, 2, 3], [1, 2, 3, 2, 3]) == 2
    assert search([4], [1, 2, 3]) == -1
    assert search([], [1, 2]) == -1
    assert search([1, 2, 3, 4], [1, 2, 3]) == -1


def test_locate_triples_counts_not_found_and_beyond_max_len(tok):
    text = "《七里香》是周杰伦的歌，由方文山作词" + "啊" * 30 + "林俊杰"
    ids, offsets, full = encode_cut(tok, text, 32)
    assert len(ids) == 32 and ids[-1] == tok.sep_id and offsets[-1] == -1 and len(full) == len(text) + 2
    spo = [
        ("七里香", "歌手", "周杰伦"),
        ("七里香", "作词", "方文山"),
        ("七里香", "歌手", "林俊杰"),
        ("稻香", "歌手", "周杰伦"),
    ]
    spoes, counts = locate_triples(tok, ids, full, spo, {"歌手": 0, "作词": 1})
    assert counts == Counter(located=2, beyond_max_len=1, not_found=1)
    # token positions are character positions + 1 ([CLS]); spans inclusive
    assert spoes == {(2, 4): [(7, 9, 0), (14, 16, 1)]}
    assert "".join(text[offsets[i]] for i in range(2, 5)) == "七里香"


def test_search_is_case_and_width_tolerant_through_the_tokenizer(tok):
    text = "Apple公司的CEO是Tim Cook"
    ids, _, full = encode_cut(tok, text, 128)
    spoes, counts = locate_triples(tok, ids, full, [("apple", "p", "tim cook")], {"p": 0})
    assert counts["located"] == 1
    ((s, objs),) = spoes.items()
    assert s == (1, 5) and objs == [(13, 19, 0)]


def test_subject_sampling_rule():
    subjects = [(1, 3), (5, 5), (5, 8)]
    rng = random.Random(0)
    draws = Counter(sample_subject(subjects, rng, "post") for _ in range(3000))
    # start from the gold starts (with their multiplicity), end from gold ends >= start
    allowed = {(1, 3), (1, 5), (1, 8), (5, 5), (5, 8)}
    assert set(draws) == allowed
    assert draws[(1, 3)] + draws[(1, 5)] + draws[(1, 8)] == pytest.approx(1000, abs=120)
    gold = Counter(sample_subject(subjects, rng, "gold") for _ in range(300))
    assert set(gold) == set(subjects)


def test_collator_labels_and_deterministic_sampling():
    feats = [
        {"input_ids": [101, 5, 6, 7, 8, 102], "index": 0, "spoes": {(1, 2): [(3, 4, 1)]}},
        {"input_ids": [101, 5, 6, 102], "index": 1, "spoes": {(1, 1): [(2, 2, 0)], (2, 2): [(1, 1, 2)]}},
    ]
    col = TripleCollator(pad_id=0, num_predicates=3, seed=7, sampling="gold")
    b = col(feats)
    assert b["input_ids"].shape == (2, 6) and b["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0]
    assert b["subject_labels"][0].nonzero().tolist() == [[1, 0], [2, 1]]
    assert b["subject_labels"][1].nonzero().tolist() == [[1, 0], [1, 1], [2, 0], [2, 1]]
    assert b["subject_ids"][0].tolist() == [1, 2]
    assert b["object_labels"][0].nonzero().tolist() == [[3, 1, 0], [4, 1, 1]]
    s = tuple(b["subject_ids"][1].tolist())
    expect = {(1, 1): [[2, 0, 0], [2, 0, 1]], (2, 2): [[1, 2, 0], [1, 2, 1]]}[s]
    assert b["object_labels"][1].nonzero().tolist() == expect
    # same seed/epoch/index -> same draw, whatever the batch; epochs differ
    again = col(list(reversed(feats)))
    assert tuple(again["subject_ids"][0].tolist()) == s
    epochs = {
        tuple(TripleCollator(0, 3, 7, "gold", epoch_fn=lambda e=e: e)(feats)["subject_ids"][1].tolist())
        for e in range(20)
    }
    assert epochs == {(1, 1), (2, 2)}


# ----------------------------------------------------------------------------- DataModule
def _dm(**kw):
    args = dict(
        train_file=str(LIC / "train_data.json.xz"),
        eval_file=str(LIC / "dev_data.json.xz"),
        schema_file=str(LIC / "all_50_schemas.xz"),
        vocab_file=VOCAB,
        batch_size=8,
        eval_batch_size=16,
    )
    args.update(kw)
    return TripleDataModule(**args)


@pytest.fixture(scope="module")
def lic_dm():
    dm = _dm()
    dm.setup("fit")
    return dm


def test_split_rule_and_counts(lic_dm):
    dm = lic_dm
    dev, _ = read_triples(LIC / "dev_data.json.xz")
    assert [r.text for r in dm.records["val"]] == [r.text for r in dev[:200]]
    assert [r.text for r in dm.records["test"]] == [r.text for r in dev[200:]]
    st = dm.stats
    assert st["num_predicates"] == 49
    assert st["train_records"] == 2601 and st["train_triples"] == 5293
    assert st["train_texts_cut"] == sum(len(r.text.replace(" ", "")) > 126 for r in dm.records["train"]) > 0
    lost = st["train_triples_not_found"] + st["train_triples_beyond_max_len"]
    assert st["train_triples_located"] + lost == 5293 and lost > 0
    assert st["train_features"] == 2601 - st.get("train_records_dropped_no_triple", 0)
    assert st["test_records"] == 800 and st["val_records"] == 200
    assert dm.model_kwargs()["num_predicates"] == 49
    assert max(len(f["input_ids"]) for f in dm.features["train"]) == 128


def test_train_batches_carry_consistent_labels(lic_dm):
    batch = next(iter(lic_dm.train_dataloader()))
    bsz, length = batch["input_ids"].shape
    assert batch["object_labels"].shape == (bsz, length, 49, 2)
    for b in range(bsz):
        n = int(batch["attention_mask"][b].sum())
        assert batch["subject_labels"][b, n:].sum() == 0 and batch["object_labels"][b, n:].sum() == 0
        s, e = batch["subject_ids"][b].tolist()
        assert batch["subject_labels"][b, s, 0] == 1 and batch["subject_labels"][b, e, 1] == 1 and s <= e
        # every object start has an end at or after it under the same predicate
        for pos, p in (batch["object_labels"][b, :, :, 0] > 0).nonzero().tolist():
            assert (batch["object_labels"][b, pos:, p, 1] > 0).any()


def test_decode_maps_token_spans_to_character_offsets(tok):
    dm = _dm()
    text = "周杰伦 (Jay Chou) 演唱了《七里香》"
    dm.set_predict_texts([text, "空"])
    feats = dm.features["predict"]
    off = feats[0]["offsets"]
    pos = {ch_i: t for t, ch_i in enumerate(off) if ch_i >= 0}  # char index -> token position
    s0, s1 = pos[text.index("七")], pos[text.index("香")]
    o0, o1 = pos[text.index("J")], pos[text.index("u")]  # "Jay Chou": a space inside the span
    p = dm.predicate_id["歌手"]
    last = len(feats[0]["input_ids"]) - 1
    decoded = dm.decode(
        "predict", {0: [(s0, s1, p, o0, o1), (s0, s1, p, o0, o1), (0, s1, p, o0, o1), (s0, s1, p, o0, last)], 1: []}
    )
    assert decoded[1] == []
    assert decoded[0] == [
        {
            "subject": "七里香",
            "predicate": "歌手",
            "object": "Jay Chou",
            "subject_span": [text.index("七"), text.index("香") + 1],
            "object_span": [text.index("J"), text.index("u") + 1],
        }
    ]
    (t,) = decoded[0]
    assert text[slice(*t["object_span"])] == "Jay Chou"
    assert dm.format_prediction(text, decoded[0]) == {"text": text, "spo_list": decoded[0]}


def test_score_counts_every_gold_triple_and_reports_unlocatable(lic_dm):
    dm = lic_dm
    # a perfect token-level prediction for the locatable gold triples of val
    preds = {}
    for i, rec in enumerate(dm.records["val"]):
        ids = dm.features["val"][i]["input_ids"]
        full = dm.tokenizer.encode(rec.text).ids
        spoes, _ = locate_triples(dm.tokenizer, ids, full, rec.spo_list, dm.predicate_id)
        preds[i] = [(s0, s1, p, o0, o1) for (s0, s1), objs in spoes.items() for o0, o1, p in objs]
    metrics, outputs = score_triples(dm.eval_data("val"), preds)
    lost = metrics["n_gold_not_found"] + metrics["n_gold_beyond_max_len"]
    assert metrics["n_gold"] == sum(len(set(r.spo_list)) for r in dm.records["val"])
    assert metrics["precision"] == 1.0
    assert metrics["n_correct"] >= metrics["n_gold"] - lost
    assert metrics["recall"] < 1.0 or lost == 0
    assert len(outputs) == 200 and metrics["evaluated_on"] == "held-out records"


def _duie_dm(**kw) -> TripleDataModule:
    one = str(DUIE / "train_data_5000.json.xz")
    return _dm(train_file=one, eval_file=one, schema_file=str(DUIE / "duie_schema.json.xz"), **kw)


def test_duie2_config_slices_one_file(tmp_path):
    dm = _duie_dm(train_slice=[0, 300], eval_slice=[4000, 4300])
    dm.setup("fit")
    assert dm.stats["train_records"] == 300 and dm.stats["val_records"] == 200 and dm.stats["test_records"] == 100
    assert len(dm.predicates) == 48
    with pytest.raises(ConfigError, match="eval_slice"):
        _duie_dm().setup("fit")


def test_overfit_mode_evaluates_on_the_training_records_and_says_so():
    dm = _dm(overfit_records=20)
    dm.setup("fit")
    assert [r.text for r in dm.records["test"]] == [r.text for r in dm.records["train"]][:20]
    metrics, _ = score_triples(dm.eval_data("test"), {})
    assert metrics["evaluated_on"] == "training records (overfit check)"
    assert "baseline_f1" not in metrics


def test_bad_config_values():
    with pytest.raises(ConfigError, match="subject_sampling"):
        _dm(subject_sampling="random")
    with pytest.raises(ConfigError, match="max_len"):
        _dm(max_len=2)


def test_predicate_outside_schema_in_training_file_is_a_data_error(tmp_path):
    path = _write(
        tmp_path / "t.json", [{"text": "ab", "spo_list": [{"subject": "a", "predicate": "无此关系", "object": "b"}]}]
    )
    with pytest.raises(DataError, match=r"t.json:1: predicate '无此关系'"):
        _dm(train_file=str(path)).setup("fit")


def test_dataloader_tensors_are_on_cpu_and_long(lic_dm):
    batch = next(iter(lic_dm.val_dataloader()))
    assert batch["input_ids"].dtype == torch.long and "index" in batch


def test_shipped_triples_are_all_found_in_their_text(lic_dm):
    """The shipped rates behind data.max_triples_not_found_fraction's default (1 %): none."""
    duie = _duie_dm(train_slice=[0, 4000], eval_slice=[4000, 5000])
    duie.setup("fit")
    for dm, triples in ((lic_dm, (5293, 429, 1644)), (duie, (7227, 338, 1380))):
        assert tuple(dm.stats[f"{s}_triples"] for s in ("train", "val", "test")) == triples
        assert all(dm.stats[f"{s}_triples_not_found"] == 0 for s in ("train", "val", "test"))
