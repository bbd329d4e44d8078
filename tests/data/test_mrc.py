"""MRC readers (native WebQA/SogouQA, CMRC 2018 -> windows), layout bounds and the MLM DataModule."""

from __future__ import annotations

import json
import lzma
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from bertlab.data import mrc
from bertlab.data.mrc import (
    MrcQuestion,
    Passage,
    answer_in_passage,
    answer_parts_in,
    baseline_answer_len,
    clean_passage,
    cmrc_question_windows,
    layout_oracle,
    overlap_baseline,
    parts_target,
    read_cmrc,
    read_native,
    split_of_context,
    window_starts,
)
from bertlab.data.mrc_datamodule import MrcDataModule
from bertlab.metrics.reading_comprehension import normalize_answer, reading_comprehension_scores, score_answer
from bertlab.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "mrc"
VOCAB = str(ROOT / "data" / "vocab" / "bert-base-chinese" / "vocab.txt")
CMRC = [DATA / "cmrc2018" / "cmrc2018_dev.json.xz", DATA / "cmrc2018" / "cmrc2018_trial.json.xz"]


# ------------------------------------------------------------------ windows
@pytest.mark.parametrize(
    "n,expected",
    [
        (0, [0]),
        (10, [0]),
        (255, [0]),
        (256, [0, 128]),
        (300, [0, 128]),
        (383, [0, 128]),
        (384, [0, 128, 256]),
        (600, [0, 128, 256, 384]),
    ],
)
def test_window_starts(n, expected):
    assert window_starts(n, 255, 128) == expected


def test_windows_cover_everything_and_short_spans_lie_in_some_window():
    rng = random.Random(0)
    for _ in range(200):
        n, w, s = rng.randint(1, 700), rng.randint(2, 60), 0
        s = rng.randint(1, w)
        starts = window_starts(n, w, s)
        assert starts[-1] + w >= n and all(b - a == s for a, b in zip(starts, starts[1:]))
        covered = set().union(*(range(a, min(a + w, n)) for a in starts))
        assert covered == set(range(n))
        span_len = rng.randint(1, w - s + 1)
        a = rng.randint(0, max(n - span_len, 0))
        if a + span_len <= n:
            assert any(st <= a and a + span_len <= st + w for st in starts)


def _context(n_tokens: int) -> str:
    # distinct-looking characters with a space every 10 tokens (spaces are not tokens)
    chars = [chr(0x4E00 + i) for i in range(n_tokens)]
    return "".join(c + (" " if i % 10 == 9 else "") for i, c in enumerate(chars))


def _span(context: str, tok_from: int, tok_to: int) -> tuple[str, int]:
    pos = [i for i, c in enumerate(context) if not c.isspace()]
    return context[pos[tok_from] : pos[tok_to - 1] + 1], pos[tok_from]


def test_window_answers_near_the_edges():
    ctx = _context(400)  # windows: tokens [0,255) [128,383) [256,400)
    cases = {
        (250, 255): [True, True, False],  # ends on window 0's last token
        (250, 256): [False, True, False],  # crosses window 0's end
        (0, 5): [True, False, False],
        (128, 130): [True, True, False],  # starts on window 1's first token
        (380, 384): [False, False, True],  # crosses window 1's end
        (395, 400): [False, False, True],  # the context's last tokens
    }
    for (a, b), inside in cases.items():
        text, start = _span(ctx, a, b)
        ps = cmrc_question_windows(ctx, [(text, start)], 255, 128)
        assert len(ps) == 3
        assert [p.answer == text for p in ps] == inside, (a, b)
        for p in ps:
            assert ctx[p.context_start : p.context_start + len(p.text)] == p.text
            assert len([c for c in p.text if not c.isspace()]) <= 255
            if p.answer:
                assert p.text[p.answer_start : p.answer_start + len(text)] == text


def test_window_answer_is_the_first_gold_span_inside():
    ctx = _context(400)
    late, early = _span(ctx, 390, 395), _span(ctx, 10, 12)
    ps = cmrc_question_windows(ctx, [late, early], 255, 128)
    assert [p.answer for p in ps] == [early[0], "", late[0]]


# ------------------------------------------------------------------ CMRC on the shipped files
@pytest.fixture(scope="module")
def cmrc_splits():
    stats: Counter = Counter()
    out = {s: [] for s in mrc.SPLITS}
    for f in CMRC:
        for s, qs in read_cmrc(str(f), stats=stats).items():
            out[s] += qs
    return out, stats


def _contexts(path: Path) -> list[tuple[str, list[dict]]]:
    data = json.load(lzma.open(path, "rt", encoding="utf-8"))
    return [(p["context"], p["qas"]) for a in data["data"] for p in a["paragraphs"]]


def test_cmrc_split_by_context_has_no_overlap(cmrc_splits):
    out, stats = cmrc_splits
    assert sum(len(v) for v in out.values()) == 4221
    ctx_of = {}
    for f in CMRC:
        for ctx, qas in _contexts(f):
            for qa in qas:
                ctx_of[qa["id"]] = ctx
    seen = {}
    for split, qs in out.items():
        for q in qs:
            assert split_of_context(ctx_of[q.id]) == split
            for p in q.passages:
                assert seen.setdefault(p.text, split) == split  # no passage in two splits
    assert 300 < len(out["test"]) < 600 and 300 < len(out["val"]) < 600
    assert stats["answers_not_in_context_scoring_only"] == 193  # CMRC's answer_start == -1 answers


def test_split_rule_is_the_documented_hash():
    import hashlib

    for ctx in ["", "北京", "a" * 1000, "天安门"]:
        h = int(hashlib.sha1(ctx.encode("utf-8")).hexdigest(), 16) % 10
        assert split_of_context(ctx) == ("test" if h == 0 else "val" if h == 1 else "train")


def test_split_rule_is_the_pretraining_corpus_rule():
    """One rule for the project: the MRC split and the MLM corpus's held-out CMRC contexts."""
    from bertlab.data import pretraining_corpus

    assert split_of_context is pretraining_corpus.cmrc_split_of_context


def test_cmrc_windows_carry_their_gold_span(cmrc_splits):
    out, _ = cmrc_splits
    for q in out["val"]:
        assert q.answers and len(q.passages) >= 1
        for p in q.passages:
            if p.answer:
                assert p.text[p.answer_start : p.answer_start + len(p.answer)] == p.answer
                assert p.answer in q.answers


def test_layout_ceiling_against_independent_counts(cmrc_splits):
    """Oracle Acc lies between the share of questions with a gold answer of <= M-1 tokens inside
    a window (verbatim) and the share where a normalised gold of <= M-1 characters is inside a
    normalised window (normalising a passage run gives a run of the normalised passage)."""
    out, _ = cmrc_splits
    qs = out["test"]
    m1 = 31
    fits = sum(
        any(
            len("".join(g.split())) <= m1 and "".join(g.split()) in "".join(p.text.split())
            for g in q.answers
            for p in q.passages
        )
        for q in qs
    )
    loose = sum(
        any(
            0 < len(normalize_answer(g)) <= m1 and normalize_answer(g) in normalize_answer(p.text)
            for g in q.answers
            for p in q.passages
        )
        for q in qs
    )
    ceiling = reading_comprehension_scores([layout_oracle(q, m1) for q in qs], [q.answers for q in qs])
    assert fits / len(qs) <= ceiling["acc"] <= loose / len(qs)
    assert fits < loose  # the bounds differ on this split, so the test can tell them apart
    assert 0.8 < ceiling["acc"] < 1.0 and ceiling["acc"] < ceiling["f1"] <= 1.0


def test_layout_oracle_hand_examples():
    long = "".join(chr(0x4E00 + i) for i in range(40))
    q = MrcQuestion("1", "问", [Passage("前" + long + "后")], [long])
    pred = layout_oracle(q, 31)
    assert pred == long[:31]
    assert score_answer(pred, q.answers) == (0.0, pytest.approx(2 * 31 / (31 + 40)))
    # an answer split across two passages: the longer piece
    q = MrcQuestion("2", "问", [Passage("xx" + long[:10]), Passage(long[10:] + "yy")], [long])
    assert layout_oracle(q, 31) == long[10:41][:31]
    q = MrcQuestion("3", "问", [Passage("甲乙丙")], ["丁"])
    assert layout_oracle(q, 31) == ""


def test_overlap_baseline_matches_brute_force():
    rng = random.Random(1)
    for _ in range(200):
        alpha = "甲乙丙丁戊"
        q = MrcQuestion(
            "x",
            "".join(rng.choice(alpha) for _ in range(rng.randint(1, 6))),
            [Passage("".join(rng.choice(alpha) for _ in range(rng.randint(1, 12)))) for _ in range(2)],
            ["".join(rng.choice(alpha) for _ in range(rng.randint(1, 4)))],
        )
        n = len(q.answers[0])
        qc = Counter(q.question)
        best, best_ov = "", -1
        for p in q.passages:
            for i in range(len(p.text) - n + 1):
                ov = sum((Counter(p.text[i : i + n]) & qc).values())
                if ov > best_ov:
                    best, best_ov = p.text[i : i + n], ov
        assert overlap_baseline(q, n) == best


def test_baseline_answer_length_comes_from_the_training_split():
    def question(answer: str) -> MrcQuestion:
        return MrcQuestion("t", "问", [Passage("甲乙丙丁")], [answer] if answer else [])

    # lengths 2, 2, 3, 3, 4 (+ a no-answer question, skipped): tie 2 vs 3 -> the shorter
    train = [question(a) for a in ["北京", "上 海", "天安门", "长城站", "人民大会", ""]]
    assert baseline_answer_len(train) == 2
    assert baseline_answer_len(train + [question("故宫馆")]) == 3
    assert baseline_answer_len([question("")]) == 1
    with pytest.raises(ValueError):
        overlap_baseline(train[0], 0)


def test_baseline_never_reads_the_evaluated_gold_answers(tmp_path):
    """The evaluated questions' answers (question- and passage-level) replaced by garbage give
    the same baseline answers: only the training split sets its length."""
    dm = MrcDataModule(
        vocab_file=VOCAB,
        source="cmrc2018",
        files=[str(CMRC[1])],
        answer_rule="passage",
        max_train_questions=60,
        max_eval_questions=20,
    )
    dm.setup("fit")
    from bertlab.tasks.mlm_reading_comprehension import answer_bounds

    bounds = answer_bounds(dm.questions["test"], dm.hparams.max_answer_len, dm.questions["train"])
    n = baseline_answer_len(dm.questions["train"])
    assert bounds["baseline_answer_len"] == n and "training" in bounds["baseline_rule"]
    qs = dm.questions["test"]
    before = [overlap_baseline(q, n) for q in qs]
    garbage = [
        MrcQuestion(q.id, q.question, [Passage(p.text, "乱码" * 9) for p in q.passages], ["乱码" * (i + 5)])
        for i, q in enumerate(qs)
    ]
    assert [overlap_baseline(q, n) for q in garbage] == before
    assert all(len("".join(b.split())) == n for b in before if b)
    # the datamodule's baseline metrics use exactly these answers
    expected = reading_comprehension_scores(before, [q.answers for q in qs])
    assert bounds["baseline_final"] == pytest.approx(expected["final"])
    assert bounds["baseline_cmrc_f1"] == pytest.approx(expected["cmrc_f1"])


# ------------------------------------------------------------------ bad input
def _write(tmp_path: Path, name: str, obj) -> str:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _squad(context: str, answers: list[dict]) -> dict:
    return {
        "data": [{"paragraphs": [{"context": context, "qas": [{"id": "Q1", "question": "问？", "answers": answers}]}]}]
    }


def test_cmrc_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"bad\.json:2: malformed JSON"):
        read_cmrc(_write(tmp_path, "bad.json", '{"data": [\n  {,}]}'))
    with pytest.raises(DataError, match="'Q1': answer '丁' .* is not in its context"):
        read_cmrc(_write(tmp_path, "a.json", _squad("甲乙丙", [{"text": "丁", "answer_start": 1}])))
    with pytest.raises(DataError, match="'Q1': none of its answers occurs"):
        read_cmrc(_write(tmp_path, "b.json", _squad("甲乙丙", [{"text": "丁", "answer_start": -1}])))
    with pytest.raises(DataError, match="missing field 'context'"):
        read_cmrc(_write(tmp_path, "c.json", {"data": [{"paragraphs": [{"qas": []}]}]}))
    with pytest.raises(DataError, match="lacks 'text' or 'answer_start'"):
        read_cmrc(_write(tmp_path, "d.json", _squad("甲乙丙", [{"text": "乙"}])))
    # a start that is off by one is repaired (counted); a -1 answer elsewhere is kept for scoring
    stats: Counter = Counter()
    out = read_cmrc(
        _write(
            tmp_path,
            "e.json",
            _squad("甲乙丙", [{"text": "乙丙", "answer_start": 2}, {"text": "丁", "answer_start": -1}]),
        ),
        stats=stats,
    )
    (q,) = [q for qs in out.values() for q in qs]
    assert q.answers == ["乙丙", "丁"] and q.passages[0].answer == "乙丙" and q.passages[0].answer_start == 1
    assert stats["answer_starts_repaired"] == 1 and stats["answers_not_in_context_scoring_only"] == 1


def test_native_bad_input(tmp_path):
    with pytest.raises(DataError, match=r"x\.json:3: malformed JSON"):
        read_native(_write(tmp_path, "x.json", '[\n{"question": "q",\n "passages": [}]'))
    with pytest.raises(DataError, match=r"y\.jsonl:2: malformed JSON"):
        read_native(_write(tmp_path, "y.jsonl", '{"question": "q", "passages": []}\n{"question": \n'))
    with pytest.raises(DataError, match=r"record 2 \(id 'b'\): missing field 'passages'"):
        read_native(
            _write(tmp_path, "z.json", [{"id": "a", "question": "q", "passages": []}, {"id": "b", "question": "q"}])
        )
    with pytest.raises(DataError, match="passage 1 lacks the field 'passage'"):
        read_native(_write(tmp_path, "w.json", [{"question": "q", "passages": [{"answer": ""}]}]))
    stats: Counter = Counter()
    qs = read_native(
        _write(
            tmp_path,
            "v.json",
            [
                {"id": "1", "question": "q", "passages": []},
                {
                    "id": "2",
                    "question": "q",
                    "passages": [{"passage": " ", "answer": ""}, {"passage": "甲乙", "answer": "丙"}],
                },
                {"id": "3", "question": "q", "passages": [{"passage": "甲乙", "answer": ""}]},
            ],
        ),
        stats,
    )
    assert [q.id for q in qs] == ["2", "3"] and len(qs[0].passages) == 1
    assert stats["questions_without_passages_dropped"] == 1 and stats["empty_passages_dropped"] == 1
    assert stats["passage_answers_not_in_passage"] == 1 and stats["questions_without_answer"] == 1


def test_webqa_and_sogouqa_samples_as_format_fixtures():
    path = str(DATA / "webqa_sogouqa_sample" / "WebQA.json.xz")
    with pytest.raises(DataError, match=r"WebQA\.json\.xz:\d+: record 12: missing field 'question'"):
        read_native(path)  # the shipped sample's last record is cut off
    stats: Counter = Counter()
    web = read_native(path, stats, skip_bad_records=True)
    sog = read_native(str(DATA / "webqa_sogouqa_sample" / "SogouQA.json.xz"), stats, skip_bad_records=True)
    # the card counts 12 + 22 records; the last record of each sample holds only its passages
    assert len(web) == 11 and len(sog) == 21 and stats["bad_records_skipped"] == 2
    assert web[0].question == "能把太阳的七种颜色全部吸收的物体是" and web[0].answers == ["黑色"]
    assert len(web[0].passages) == 20 and web[0].passages[3].answer == ""
    assert sog[0].answers[:2] == ["林海音", "林含英"]  # distinct, in passage order
    assert all(p.text.strip() for q in web + sog for p in q.passages)


# ------------------------------------------------------------------ bert4keras's example rules
SOGOU = str(DATA / "webqa_sogouqa_sample" / "SogouQA.json.xz")
WEBQA = str(DATA / "webqa_sogouqa_sample" / "WebQA.json.xz")


def test_bert4keras_example_rules_by_hand():
    # re.sub(' |、|；|，', ',', passage): these four characters only (ASCII ; and full-width ： stay)
    assert clean_passage("巴西 俄罗斯、印度；中国，南非;x：y") == "巴西,俄罗斯,印度,中国,南非;x：y"
    # all([a in passage for a in answer.split(' ')]); target answer.replace(' ', ',')
    assert answer_parts_in("巴西 南非", "南非,巴西") and not answer_parts_in("巴西 日本", "南非,巴西")
    assert answer_parts_in("巴西  南非", "巴西南非")  # two spaces: the empty part is in any passage
    assert parts_target("巴西 俄罗斯 南非") == "巴西,俄罗斯,南非"
    # an answer belongs to its passage by either test: whitespace aside, or as parts of the cleaned passage
    assert answer_in_passage("北 京", "首都北京") and answer_in_passage("巴西 南非", "南非、巴西")
    assert answer_in_passage("北京、上海", "北京、上海") and not answer_in_passage("戊", "丙丁")


def test_an_answer_the_cleaning_hides_is_counted_not_refused(tmp_path):
    # the cleaned passage says 北京,上海: the example's test cannot find "北京、上海" (no target, as there)
    recs = [{"id": "1", "question": "哪里？", "passages": [{"passage": "有北京、上海两地", "answer": "北京、上海"}]}]
    stats: Counter = Counter()
    q = read_native(_write(tmp_path, "h.json", recs * 3), stats, clean=True)[0]
    assert q.passages[0].text == "有北京,上海两地" and q.passages[0].answer == "北京、上海"
    assert stats["passage_answers_hidden_by_the_cleaning"] == 3 and stats["passage_answers_not_in_passage"] == 0


def test_native_reader_cleans_the_shipped_passages_only_when_asked():
    raw = read_native(SOGOU, skip_bad_records=True)
    cleaned = read_native(SOGOU, skip_bad_records=True, clean=True)
    assert [q.answers for q in raw] == [q.answers for q in cleaned]  # gold answers are never cleaned
    pairs = [(a.text, b.text) for qa, qb in zip(raw, cleaned) for a, b in zip(qa.passages, qb.passages)]
    assert sum(a != b for a, b in pairs) > 100 and all(not set(" 、；，") & set(b) for _, b in pairs)
    assert all(len(a) == len(b) for a, b in pairs)  # one character for one


def test_space_separated_answer_becomes_the_comma_target_on_the_shipped_sogouqa_file():
    # question 10001 (金钻五国哪五国): only passage 7 is annotated, "巴西 俄罗斯 印度 中国 南非".
    # Cleaned, passages 5-10 hold every part (e.g. 5: "巴西、俄罗斯、印度、中国和南非" -> "巴西,俄罗斯,..."),
    # passage 4 lacks 南非, passages 1-3 lack 巴西: targets 巴西,俄罗斯,印度,中国,南非 on 5-10, none on 1-4.
    dm = _dm(None, SOGOU, skip_bad_records=True, bert4keras_cleaning=True, max_answer_len=32)
    qi = next(i for i, q in enumerate(dm.questions["train"]) if q.id == "10001")
    tokens = [[dm.tokenizer.tokens[t] for t in p.answer_ids] for p in dm.encoded["train"][qi].passages]
    target = list("巴西,俄罗斯,印度,中国,南非")
    assert tokens == [[], [], [], [], target, target, target, target, target, target]
    # answer_rule passage: the annotated passage 7 only, by the same test and target
    dm = _dm(None, SOGOU, skip_bad_records=True, bert4keras_cleaning=True, max_answer_len=32, answer_rule="passage")
    tokens = [[dm.tokenizer.tokens[t] for t in p.answer_ids] for p in dm.encoded["train"][qi].passages]
    assert tokens == [[]] * 6 + [target] + [[]] * 3
    # evaluation and predict read the cleaned passages too (the example cleans before gen_answer)
    assert dm.questions["test"][qi].passages[6].text.startswith("很多人都听说过金砖五国,你知道")
    dm.set_predict_texts([{"question": "哪五国？", "passages": ["巴西 俄罗斯、印度"]}])
    assert dm.questions["predict"][0].passages[0].text == "巴西,俄罗斯,印度"


def test_bert4keras_cleaning_is_for_native_files_only():
    with pytest.raises(ConfigError, match="data.bert4keras_cleaning"):
        MrcDataModule(vocab_file=VOCAB, files=[str(CMRC[0])], bert4keras_cleaning=True)


# ------------------------------------------------------------------ answers not in their passages
def _with_answers(path: str, answer) -> list[dict]:
    """The shipped records (the cut-off last one left out) with each non-empty answer replaced."""
    recs = [rec for _, rec in mrc._load_json_records(path) if "question" in rec]
    for r in recs:
        for p in r["passages"]:
            p["answer"] = answer(p["answer"]) if p["answer"] else ""
    return recs


@pytest.mark.parametrize("clean", [False, True])
def test_native_file_whose_answers_are_not_in_their_passages_is_refused(tmp_path, clean):
    recs = _with_answers(SOGOU, lambda a: "不在文中的答案")  # 79 of 79 passage answers absent
    text = json.dumps(recs, ensure_ascii=False, indent=4)  # one record starts a line "    {"
    path = tmp_path / "shuffled.json"
    path.write_text(text, encoding="utf-8")
    first = next(i for i, r in enumerate(recs) if any(p["answer"] for p in r["passages"]))
    line = [i for i, ln in enumerate(text.split("\n"), start=1) if ln == "    {"][first]
    with pytest.raises(DataError) as err:
        read_native(str(path), clean=clean)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: record {first + 1} (id '{recs[first]['id']}'), passage ")
    assert (
        "79 of 79 passage answers are not, more than 1%: answers and passages do not belong" in msg and "\n" not in msg
    )


def test_one_answer_not_in_its_passage_is_repaired_and_stated(tmp_path, caplog):
    recs = [
        {"id": str(i), "question": f"问{i}", "passages": [{"passage": f"甲乙{i}", "answer": f"乙{i}"}]}
        for i in range(150)
    ]
    recs[7]["passages"].append({"passage": "丙丁", "answer": "戊"})
    stats: Counter = Counter()
    with caplog.at_level("WARNING"):
        qs = read_native(_write(tmp_path, "one.json", recs), stats)
    assert stats["passage_answers_not_in_passage"] == 1
    assert qs[7].passages[1].answer == "" and qs[7].answers == ["乙7", "戊"]  # kept for scoring
    assert "1 of 151 passage answers are not in their passages" in caplog.text and "more than 1% stops" in caplog.text
    # 1 % of 151 is 1.51: a second absent answer (2 > 1.51) stops
    recs[8]["passages"][0]["answer"] = "己"
    with pytest.raises(
        DataError, match=r"one\.json:1: record 8 \(id '7'\), passage 2: answer '戊' is not in its passage; 2 of 151"
    ):
        read_native(_write(tmp_path, "one.json", recs))


@pytest.mark.parametrize("clean", [False, True])
def test_every_shipped_native_file_has_its_answers_in_its_passages(clean):
    for path, n in ((WEBQA, 96), (SOGOU, 79)):
        stats: Counter = Counter()
        qs = read_native(path, stats, skip_bad_records=True, clean=clean)
        assert sum(bool(p.answer) for q in qs for p in q.passages) == n
        assert stats["passage_answers_not_in_passage"] == 0 and stats["passage_answers_hidden_by_the_cleaning"] == 0


# ------------------------------------------------------------------ DataModule
def _native_file(tmp_path: Path) -> str:
    recs = [
        {
            "id": "a",
            "question": "中国的首都是哪里？",
            "passages": [
                {"passage": "北京是中华人民共和国的首都。", "answer": "北京"},
                {"passage": "上海是最大的城市。", "answer": ""},
                {"passage": "首都 北 京，简称京。", "answer": "北京"},
            ],
        },
        {"id": "b", "question": "问" * 80, "passages": [{"passage": "甲" * 300 + "乙丙", "answer": "乙丙"}]},
        {
            "id": "c",
            "question": "ＡＢＣ是什么？",
            "passages": [{"passage": "答案是ＡＢＣ ｄｅｆ。", "answer": "ＡＢＣ ｄｅｆ"}],
        },
    ]
    return _write(tmp_path, "qa.json", recs)


def _dm(tmp_path, path: str | None = None, **kw) -> MrcDataModule:
    path = path or _native_file(tmp_path)
    args = dict(
        vocab_file=VOCAB,
        source="native",
        files=[path],
        val_files=[path],
        test_files=[path],
        max_answer_len=8,
        answer_rule="first_found",
        batch_size=4,
        eval_batch_size=4,
    )
    dm = MrcDataModule(**(args | kw))
    dm.setup("fit")
    return dm


def test_input_and_target_layout(tmp_path):
    dm = _dm(tmp_path)
    tok = dm.tokenizer
    m = 8
    q = dm.encoded["train"][0]
    f = dm.build_feature(q.question_ids, q.passages[0], with_target=True, index=0)
    ids = f["input_ids"]
    qtext, ptext = "中国的首都是哪里？", "北京是中华人民共和国的首都。"
    assert ids[0] == tok.cls_id and ids[1 : 1 + m] == [dm.mask_id] * m and ids[1 + m] == tok.sep_id
    assert ids[2 + m : 2 + m + len(qtext)] == [tok.char_id(c) for c in qtext]
    assert ids[2 + m + len(qtext)] == tok.sep_id
    assert ids[3 + m + len(qtext) : -1] == [tok.char_id(c) for c in ptext] and ids[-1] == tok.sep_id
    assert f["labels"] == [tok.char_id("北"), tok.char_id("京"), tok.sep_id] + [-100] * (m - 3)
    # a passage without a gold answer: [SEP] only
    f = dm.build_feature(q.question_ids, q.passages[1], with_target=True, index=0)
    assert f["labels"] == [tok.sep_id] + [-100] * (m - 1)
    # the third passage has "北 京" with a space: the first gold answer is still found (spaces are no tokens)
    assert q.passages[2].answer_ids == [tok.char_id("北"), tok.char_id("京")]


def test_truncation_is_counted_and_long_answers_are_cut(tmp_path):
    dm = _dm(tmp_path, max_passage_len=255, max_answer_len=2)
    qb = dm.encoded["train"][1]
    assert len(qb.question_ids) == 63 and len(qb.passages[0].ids) == 255
    assert qb.passages[0].answer_ids == []  # the answer was cut off with the passage end
    assert dm.stats["questions_truncated"] >= 1 and dm.stats["passages_truncated"] >= 1
    assert dm.encoded["train"][0].passages[0].answer_ids == [dm.tokenizer.char_id("北")]  # cut to M - 1
    assert dm.stats["train_answers_cut_to_max_answer_len"] >= 1


def test_training_batches_draw_one_passage_per_question(tmp_path):
    dm = _dm(tmp_path)
    seen = set()
    for epoch in range(30):  # the draw is a function of (seed, epoch, question): Lightning sets the epoch
        loader = dm.train_dataloader()
        loader.batch_sampler.sampler.set_epoch(epoch)
        for batch in loader:
            assert batch["input_ids"].size(0) == 3 and batch["labels"].shape == (3, 8)
            pad = batch["input_ids"] == dm.tokenizer.pad_id
            assert torch.equal(pad, ~batch["attention_mask"])
            for ids in batch["input_ids"][batch["index"] == 0]:
                seen.add(tuple(ids.tolist()))
    assert len(seen) == 3  # every passage of question a got drawn


def test_eval_batches_hold_whole_questions_and_answers_map_back(tmp_path):
    dm = _dm(tmp_path, eval_batch_size=2)
    batches = dm._question_batches("test")
    assert batches == [[0, 1, 2], [3, 4]]  # question a (3 passages > 2) is never split
    # fake decoder output: the tokens of "ＡＢＣｄｅｆ" in passage 0 of question c, found at token 3
    tok = dm.tokenizer
    toks = [tok.char_id(c) for c in "ＡＢＣｄｅｆ"]
    preds = {
        0: {"tokens": [tok.char_id("北"), tok.char_id("京")], "start": 0, "score": 0.9},
        1: {"tokens": [], "start": -1, "score": 0.8},
        2: {"tokens": [tok.char_id("北"), tok.char_id("京")], "start": 2, "score": 0.5},
        3: {"tokens": [], "start": -1, "score": 0.9},
        4: {"tokens": toks, "start": 3, "score": 0.6},
    }
    from bertlab.tasks.mlm_reading_comprehension import score_answers, vote_passages

    cands = dm.decode("test", preds)  # every passage's candidate; the vote is the task's
    assert [[(c["passage"], c["answer"]) for c in q] for q in cands] == [
        [(0, "北京"), (1, ""), (2, "北 京")],
        [(0, "")],
        [(0, "ＡＢＣ ｄｅｆ")],
    ]
    assert cands[2][0]["tokens"] == tuple(toks) and cands[2][0]["score"] == 0.6
    out = vote_passages(cands)
    assert out[0]["answer"] == "北京" and out[0]["score"] == pytest.approx((0.81 + 0.25) / (1.4 + 1))
    assert [c["answer"] for c in out[0]["candidates"]] == ["北京", "", "北 京"]
    assert out[1] == {"answer": "", "score": 0.0, "candidates": [{"passage": 0, "answer": "", "score": 0.9}]}
    assert out[2]["answer"] == "ＡＢＣ ｄｅｆ"  # original passage text, space kept
    metrics, outputs = score_answers(dm.eval_data("test"), preds)
    assert metrics["acc"] == pytest.approx(2 / 3) and metrics["n_questions"] == 3
    assert outputs[2]["gold"] == ["ＡＢＣ ｄｅｆ"] and "oracle_final" in metrics and "baseline_final" in metrics


def test_trimmed_vocab_keeps_mask_and_the_training_characters(tmp_path):
    dm = _dm(tmp_path, trim_vocab="corpus")
    assert len(dm.tokenizer) < 21128 and "[MASK]" in dm.tokenizer.vocab
    assert dm.tokenizer.char_id("京") != dm.tokenizer.unk_id
    kw = dm.model_kwargs()
    assert kw["mask_id"] == dm.tokenizer.vocab["[MASK]"] and kw["sep_id"] == dm.tokenizer.sep_id
    assert kw["vocab_keep_ids"] == dm.keep_ids and kw["max_answer_len"] == 8


def test_cmrc_datamodule_uses_the_window_answer(tmp_path):
    dm = MrcDataModule(
        vocab_file=VOCAB,
        source="cmrc2018",
        files=[str(CMRC[1])],
        answer_rule="passage",
        max_train_questions=50,
        max_eval_questions=5,
    )
    dm.setup("fit")
    tok = dm.tokenizer
    for q, eq in zip(dm.questions["train"], dm.encoded["train"]):
        for p, ep in zip(q.passages, eq.passages):
            assert ep.answer_ids == [tok.char_id(c) for c in "".join(p.answer.split())][:31]
    assert len(dm.questions["train"]) == 50 and len(dm.questions["val"]) == 5
    from bertlab.tasks.mlm_reading_comprehension import answer_bounds

    # the layout's ceiling (scored by the task since issue 19, no longer a data statistic)
    assert (
        0.0
        < answer_bounds(dm.questions["test"], dm.hparams.max_answer_len, dm.questions["train"])["oracle_final"]
        <= 1.0
    )


def test_overfit_mode_evaluates_on_the_training_questions(tmp_path):
    dm = MrcDataModule(
        vocab_file=VOCAB, source="cmrc2018", files=[str(CMRC[1])], answer_rule="passage", overfit_questions=7
    )
    dm.setup("fit")
    ids = [q.id for q in dm.questions["train"]]
    assert len(ids) == 7
    assert [q.id for q in dm.questions["val"]] == ids and [q.id for q in dm.questions["test"]] == ids
    assert dm.evaluated_on == "training questions (overfit check)"
    held_out = MrcDataModule(
        vocab_file=VOCAB,
        source="cmrc2018",
        files=[str(CMRC[1])],
        answer_rule="passage",
        max_train_questions=7,
        max_eval_questions=3,
    )
    held_out.setup("fit")
    assert held_out.evaluated_on == "held-out questions"
    assert not {q.id for q in held_out.questions["test"]} & {q.id for q in held_out.questions["train"]}
    with pytest.raises(ConfigError, match="data.overfit_questions"):
        MrcDataModule(vocab_file=VOCAB, source="cmrc2018", files=[str(CMRC[1])], overfit_questions=-1)


def test_mrc_bounds_script_scores_the_shipped_cmrc_split_without_training(tmp_path):
    """scripts/mrc_bounds.py (re-scoring tables whose runs are gone): the baseline's length is
    the training split's most frequent answer length, and the ceiling beats the baseline."""
    import runpy

    root = Path(__file__).resolve().parents[2]
    mod = runpy.run_path(str(root / "scripts" / "mrc_bounds.py"))
    out = tmp_path / "bounds.md"
    assert mod["main"](["--out", str(out)]) == 0
    rows = [line.split("|")[1:-1] for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| test")]
    assert [r[2].strip() for r in rows] == ["trivial baseline (answer length 5)", "ceiling of the layout"]
    assert all(r[1].strip() == "430" for r in rows)
    base, ceil = ([float(c) for c in r[3:]] for r in rows)
    assert all(0 <= b < c <= 1 for b, c in zip(base, ceil))
