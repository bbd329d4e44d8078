"""Entity decoding and scores: hand-computed cases and agreement with seqeval."""

from __future__ import annotations

import random
import warnings

import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities

from bertlab.metrics.entities import entities_from_tags, entity_scores, extract_entities, parse_tag


def _seqeval_tags(tags, scheme):
    """What seqeval is given: BMES's M- read as I- (seqeval's IOBES has no M)."""
    return [t.replace("M-", "I-", 1) if scheme == "BMES" else t for t in tags]


def _random_tags(rng: random.Random, scheme: str, n: int) -> list[str]:
    prefixes = "BI" if scheme == "BIO" else "BMES"
    return ["O" if rng.random() < 0.35 else f"{rng.choice(prefixes)}-{rng.choice('XYZ')}" for _ in range(n)]


def _random_corpus(rng, scheme, n_sent):
    gold, pred = [], []
    for _ in range(n_sent):
        n = rng.randint(1, 9)
        g = _random_tags(rng, scheme, n)
        # predictions: mostly the gold with some noise, sometimes pure noise
        p = (
            [t if rng.random() < 0.7 else _random_tags(rng, scheme, 1)[0] for t in g]
            if rng.random() < 0.8
            else _random_tags(rng, scheme, n)
        )
        gold.append(g)
        pred.append(p)
    return pred, gold


# --------------------------------------------------------------------------- decoding
def test_extract_entities_bio_by_hand():
    assert extract_entities(["B-PER", "I-PER", "O", "B-LOC"], "BIO") == [("PER", 0, 2), ("LOC", 3, 4)]
    # an I- without B- starts an entity; a type change ends one; B- after I- starts a new one
    assert extract_entities(["I-PER", "I-PER", "I-LOC", "B-LOC", "I-LOC"], "BIO") == [
        ("PER", 0, 2),
        ("LOC", 2, 3),
        ("LOC", 3, 5),
    ]
    assert extract_entities(["O", "O"], "BIO") == []
    assert extract_entities([], "BIO") == []


def test_extract_entities_bmes_by_hand():
    tags = ["B-ORG", "M-ORG", "E-ORG", "S-NAME", "O", "B-TITLE", "E-TITLE"]
    assert extract_entities(tags, "BMES") == [("ORG", 0, 3), ("NAME", 3, 4), ("TITLE", 5, 7)]
    # ill-formed, read like seqeval's IOBES with M as I: E after E starts a new entity,
    # B-X M-X B-X E-X keeps both entities (raw M- in seqeval would lose the first)
    assert extract_entities(["E-X", "E-X"], "BMES") == [("X", 0, 1), ("X", 1, 2)]
    assert extract_entities(["B-X", "M-X", "B-X", "E-X"], "BMES") == [("X", 0, 2), ("X", 2, 4)]
    assert extract_entities(["M-X", "O", "B-X"], "BMES") == [("X", 0, 1), ("X", 2, 3)]


def test_bad_tags_raise():
    with pytest.raises(ValueError):
        extract_entities(["M-X"], "BIO")
    with pytest.raises(ValueError):
        extract_entities(["I-X"], "BMES")
    with pytest.raises(ValueError):
        extract_entities(["B-"], "BIO")
    with pytest.raises(ValueError):
        extract_entities(["O"], "IOB")
    assert parse_tag("S-RACE", "BMES") == ("S", "RACE")


@pytest.mark.parametrize("scheme", ["BIO", "BMES"])
def test_extract_entities_equals_seqeval_get_entities(scheme):
    rng = random.Random(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3000):
            tags = _random_tags(rng, scheme, rng.randint(0, 10))
            expected = [(t, s, e + 1) for t, s, e in get_entities(_seqeval_tags(tags, scheme))]
            assert extract_entities(tags, scheme) == expected, tags


# --------------------------------------------------------------------------- scores
def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "I-ORG", "O"]]
    s = entity_scores(pred, gold, "BIO")
    # predicted: PER(0,2) correct, ORG(0,2) wrong; gold: PER, LOC, ORG(0,3)
    assert (s["n_pred"], s["n_gold"], s["n_correct"], s["n_sentences"]) == (2, 3, 1, 2)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(0.4)
    assert s["per_type"]["PER"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "n_pred": 1,
        "n_gold": 1,
        "n_correct": 1,
    }
    assert s["per_type"]["LOC"]["precision"] == 0.0 and s["per_type"]["LOC"]["n_gold"] == 1
    assert list(s["per_type"]) == ["LOC", "ORG", "PER"]


def test_entity_scores_bmes_by_hand_and_empty():
    gold = [["B-ORG", "M-ORG", "E-ORG", "S-NAME"]]
    pred = [["B-ORG", "M-ORG", "E-ORG", "O"]]
    s = entity_scores(pred, gold, "BMES")
    assert (s["precision"], s["recall"]) == (1.0, 0.5)
    assert s["f1"] == pytest.approx(2 / 3)
    empty = entity_scores([["O"]], [["O"]], "BIO")
    assert (empty["precision"], empty["recall"], empty["f1"], empty["per_type"]) == (0.0, 0.0, 0.0, {})


def test_entity_scores_length_errors():
    with pytest.raises(ValueError, match="sentences"):
        entity_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentence index 1"):
        entity_scores([["O"], ["O"]], [["O"], ["O", "O"]])


def _seqeval_kwargs(scheme, mode):
    from seqeval.scheme import IOB2, IOBES

    return {"mode": "strict", "scheme": IOB2 if scheme == "BIO" else IOBES} if mode == "strict" else {}


def assert_equal_to_seqeval(pred, gold, scheme, mode):
    """bertlab's micro and per-type P/R/F1 equal seqeval's on the same tags (M- read as I-)."""
    kw = _seqeval_kwargs(scheme, mode)
    sp = [_seqeval_tags(t, scheme) for t in pred]
    sg = [_seqeval_tags(t, scheme) for t in gold]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = entity_scores(pred, gold, scheme, mode)
        assert ours["mode"] == mode
        assert ours["precision"] == pytest.approx(precision_score(sg, sp, zero_division=0, **kw), abs=1e-12)
        assert ours["recall"] == pytest.approx(recall_score(sg, sp, zero_division=0, **kw), abs=1e-12)
        assert ours["f1"] == pytest.approx(f1_score(sg, sp, zero_division=0, **kw), abs=1e-12)
        report = classification_report(sg, sp, output_dict=True, zero_division=0, **kw)
    types = {k for k in report if not k.endswith(" avg")}
    assert types == set(ours["per_type"])
    for t in types:
        mine = ours["per_type"][t]
        assert mine["precision"] == pytest.approx(report[t]["precision"], abs=1e-12)
        assert mine["recall"] == pytest.approx(report[t]["recall"], abs=1e-12)
        assert mine["f1"] == pytest.approx(report[t]["f1-score"], abs=1e-12)
        assert mine["n_gold"] == report[t]["support"]
    return ours


@pytest.mark.parametrize("mode", ["strict", "default"])
@pytest.mark.parametrize("scheme", ["BIO", "BMES"])
def test_entity_scores_agree_with_seqeval(scheme, mode):
    rng = random.Random(1 if scheme == "BIO" else 2)
    for _ in range(60):
        pred, gold = _random_corpus(rng, scheme, rng.randint(1, 12))
        assert_equal_to_seqeval(pred, gold, scheme, mode)


def test_strict_mode_edge_cases_by_hand():
    # BIO: an I- without B- is no entity; a type change ends the chunk; entities at sentence ends
    assert extract_entities(["I-PER", "I-PER", "O", "B-LOC"], "BIO", "strict") == [("LOC", 3, 4)]
    assert extract_entities(["B-PER", "I-LOC", "I-LOC"], "BIO", "strict") == [("PER", 0, 1)]
    assert extract_entities(["B-PER", "I-PER", "B-PER"], "BIO", "strict") == [("PER", 0, 2), ("PER", 2, 3)]
    # BMES: B not closed by E of its type is nothing; S alone; M without B nothing
    assert extract_entities(["B-X", "M-X", "O", "S-Y"], "BMES", "strict") == [("Y", 3, 4)]
    assert extract_entities(["B-X", "M-X", "E-Y"], "BMES", "strict") == []
    assert extract_entities(["M-X", "E-X", "B-X", "E-X"], "BMES", "strict") == [("X", 2, 4)]
    assert extract_entities(["B-X", "E-X", "E-X", "S-X"], "BMES", "strict") == [("X", 0, 2), ("X", 3, 4)]
    # the gold and predictions of these cases against seqeval strict, micro and per type
    cases_bio = (
        [["I-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-LOC", "I-LOC"], ["O", "B-ORG", "I-ORG"]],
        [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "B-LOC", "I-LOC"], ["O", "B-ORG", "I-ORG"]],
    )
    s = assert_equal_to_seqeval(*cases_bio, "BIO", "strict")
    assert (s["n_pred"], s["n_gold"], s["n_correct"]) == (3, 5, 3)
    cases_bmes = (
        [["B-X", "M-X", "O", "S-Y"], ["B-X", "M-X", "E-Y"], ["B-Z", "E-Z"]],
        [["B-X", "M-X", "E-X", "S-Y"], ["B-X", "M-X", "E-X"], ["B-Z", "E-Z"]],
    )
    s = assert_equal_to_seqeval(*cases_bmes, "BMES", "strict")
    assert (s["n_pred"], s["n_gold"], s["n_correct"]) == (2, 4, 2)
    with pytest.raises(ValueError, match="mode"):
        extract_entities(["O"], "BIO", "lenient")


# --------------------------------------------------------------------------- offsets
def test_entities_from_tags_offsets():
    text = "张三在北京大学"
    tags = ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    assert entities_from_tags(text, tags, "BIO") == [
        {"type": "PER", "start": 0, "end": 2, "text": "张三"},
        {"type": "ORG", "start": 3, "end": 7, "text": "北京大学"},
    ]
    ents = entities_from_tags("高勇，男", ["B-NAME", "E-NAME", "O", "S-RACE"], "BMES")
    assert [(e["text"], e["type"]) for e in ents] == [("高勇", "NAME"), ("男", "RACE")]
    with pytest.raises(ValueError):
        entities_from_tags("abc", ["O"], "BIO")


@pytest.mark.slow
@pytest.mark.parametrize("data", ["ner_resume", "ner_peoples_daily"])
def test_entity_scores_of_a_real_run_equal_seqeval(make_cfg, data):
    """The predictions of a short real NER training (BMES Resume, BIO People's Daily): the test
    metrics the run reports equal seqeval's strict mode on the same predicted and gold tags."""
    import torch

    from bertlab.train import train

    cfg = make_cfg(
        [
            "experiment=ner_crf",
            f"data={data}",
            "encoder.num_layers=1",
            "encoder.hidden_size=32",
            "encoder.num_attention_heads=2",
            "encoder.intermediate_size=64",
            "data.max_train_chars=80000",
            "data.max_eval_sentences=120",
            "trainer.max_steps=40",
            "trainer.max_epochs=1",
            "trainer.val_check_interval=20",
            "optimizer.lr=5e-3",
            "callbacks.rich_progress_bar=null",
            "threads=1",
        ]
    )
    metrics, objs = train(cfg)
    model, dm = objs["model"], objs["datamodule"]
    scheme = dm.entity_scheme
    model.eval()
    preds = {}
    with torch.no_grad():  # the tested checkpoint is loaded into the model by trainer.test
        for batch in dm.test_dataloader():
            preds.update(model.predict_step(batch))
    pred_tags = [dm.tag_strings(ct) for ct in dm.decode("test", preds)]
    gold = dm.gold["test"]
    assert sum(t != "O" for tags in pred_tags for t in tags) > 0, "the run predicts no entity at all"
    ours = assert_equal_to_seqeval(pred_tags, gold, scheme, "strict")
    assert metrics["test"]["mode"] == "strict" and metrics["test"]["f1"] == pytest.approx(ours["f1"], abs=1e-12)
