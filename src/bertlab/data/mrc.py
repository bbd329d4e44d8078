"""Readers for multi-passage reading comprehension (the MLM reading-comprehension post).

The native format is WebQA / SogouQA as bert4keras uses them: a JSON list (or JSON lines)
of ``{"id", "question", "passages": [{"passage", "answer"}]}``, an empty ``answer`` meaning
"the answer is not in this passage". A question's gold answer set is the distinct non-empty
passage answers, in passage order. Two rules of bert4keras's example
(``examples/task_reading_comprehension_by_mlm.py``, Jan-Feb 2020), on with ``clean=True``
(``data.bert4keras_cleaning``):

- every passage has each `` ``, ``、``, ``；``, ``，`` replaced by ``,`` (:func:`clean_passage`;
  the example does it before training and before prediction);
- an answer made of several space-separated parts (``巴西 俄罗斯 印度 中国 南非``) is in a
  passage when each part is (:func:`answer_parts_in`), and its training target is the answer
  with ``,`` for each space (:func:`parts_target`), as the cleaned passage writes it.

A passage answer that is in its passage by neither test (:func:`answer_in_passage`: the
answer inside the passage, whitespace aside, or each space-separated part inside the cleaned
passage) is repaired: the passage is taken as one without the answer (its ``answer``
emptied), the text stays a gold answer of the question for scoring; counted
(``passage_answers_not_in_passage``) and logged at WARNING. A file where that happens to
more than :data:`MAX_BAD_FRACTION` (1 %) of its passage answers, and to more than one, is
refused (DataError naming the first such record's line): its answers do not belong to its
passages. Every shipped native file has none (WebQA sample 0 of 96, SogouQA sample 0 of 79).
With ``clean``, an answer found only by the first test (``北京、上海``: the cleaned passage
says ``北京,上海``) gives no training target, as in the example; counted
(``passage_answers_hidden_by_the_cleaning``: 0 in the shipped samples).

CMRC 2018 (SQuAD-style JSON) is converted into that format:

- **split by context**: ``split_of_context(context)`` = sha1 of the UTF-8 context text as an
  integer, mod 10: 0 -> test, 1 -> val, else train (the same rule as the pretraining
  corpus, so pretraining never sees an evaluation context); all questions of a context
  stay together, so no passage is in two splits;
- **windows**: a context is cut into windows of at most ``window`` tokens (a token is a
  non-whitespace character, as :class:`bertlab.data.tokenization.CharTokenizer` makes them)
  starting every ``stride`` tokens, the last window ending at the context's end; the
  windows become the question's passages (the exact context substring, so offsets map
  back). A window's answer is the first gold answer (annotator order) whose span lies
  inside it, else empty. Any span of at most ``window - stride + 1`` tokens lies inside
  some window;
- gold answers: every annotator answer (distinct texts); an answer with
  ``answer_start == -1`` (CMRC marks answers not copied from the context that way) is kept
  for scoring only; an ``answer_start`` that is off by a few characters is moved to the
  nearest occurrence of the text (counted); an answer whose text is not in the context at
  all, with ``answer_start >= 0``, is a DataError, and so is a question none of whose
  answers is in its context.

Counts of everything dropped or repaired are kept in the readers' ``stats``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bertlab.data.format_checks import MAX_BAD_FRACTION
from bertlab.data.io import open_binary
from bertlab.data.pretraining_corpus import cmrc_split_of_context as split_of_context
from bertlab.metrics.reading_comprehension import score_answer
from bertlab.utils.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Passage:
    text: str
    #: the answer found in this passage ("" = none)
    answer: str = ""
    #: char offset of ``answer`` in ``text`` when known (CMRC windows), else None
    answer_start: int | None = None
    #: char offset of this passage in its source context (CMRC windows), else None
    context_start: int | None = None


@dataclass
class MrcQuestion:
    id: str
    question: str
    passages: list[Passage]
    #: the gold answer set (distinct, in order); empty = a no-answer question
    answers: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- native format
def _load_json_records(path: str) -> list[tuple[int | None, Any]]:
    """(line or None, record) for a JSON list file or a JSON-lines file."""
    with open_binary(path) as fh:
        try:
            raw = fh.read().decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(path, None, f"not valid UTF-8 (byte offset {err.start})") from None
        except (EOFError, OSError) as err:
            raise DataError(path, None, f"cannot read (corrupt or truncated compressed file?): {err}") from None
    stripped = raw.lstrip()
    if not stripped:
        raise DataError(path, None, "file is empty")
    first = next(ln for ln in raw.splitlines() if ln.strip())
    try:  # JSON lines when the first line alone is a whole object
        json_lines = isinstance(json.loads(first), dict) and first.strip() != stripped.strip()
    except json.JSONDecodeError:
        json_lines = False
    if not json_lines:  # one JSON document: a list of records (WebQA/SogouQA) or one object (SQuAD)
        listed = _json_list_with_lines(raw)
        if listed is not None:
            return listed
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DataError(path, err.lineno, f"malformed JSON: {err.msg} (column {err.colno})") from None
        return [(None, rec) for rec in data] if isinstance(data, list) else [(None, data)]
    out: list[tuple[int | None, Any]] = []  # JSON lines: one record a line
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, json.loads(line)))
        except json.JSONDecodeError as err:
            raise DataError(path, lineno, f"malformed JSON: {err.msg} (column {err.colno})") from None
    return out


def _json_list_with_lines(raw: str) -> list[tuple[int | None, Any]] | None:
    """(line where the record starts, record) for a document that is a JSON list; None when
    it is not one or is malformed (the caller's ``json.loads`` then says what is wrong)."""
    decoder, n = json.JSONDecoder(), len(raw)

    def skip(i: int) -> int:
        while i < n and raw[i] in " \t\n\r":
            i += 1
        return i

    i = skip(0)
    if i >= n or raw[i] != "[":
        return None
    out: list[tuple[int | None, Any]] = []
    i, line, counted = skip(i + 1), 1, 0
    if i < n and raw[i] == "]":
        return out if skip(i + 1) == n else None
    try:
        while True:
            line += raw.count("\n", counted, i)
            counted = i
            rec, i = decoder.raw_decode(raw, i)
            out.append((line, rec))
            i = skip(i)
            if i < n and raw[i] == ",":
                i = skip(i + 1)
                continue
            return out if i < n and raw[i] == "]" and skip(i + 1) == n else None
    except json.JSONDecodeError:
        return None


def _where(i: int, rec: Any) -> str:
    rid = rec.get("id") if isinstance(rec, dict) else None
    return f"record {i + 1}" + (f" (id {rid!r})" if rid is not None else "")


#: the characters bert4keras's example turns into "," in every passage
_EXAMPLE_SEPARATORS = re.compile(" |、|；|，")


def clean_passage(text: str) -> str:
    """bert4keras's example cleaning of a passage: each `` ``, ``、``, ``；``, ``，`` -> ``,``
    (one character for one, so offsets keep)."""
    return _EXAMPLE_SEPARATORS.sub(",", text)


def answer_parts_in(answer: str, text: str) -> bool:
    """bert4keras's example test: every space-separated part of ``answer`` occurs in ``text``."""
    return all(part in text for part in answer.split(" "))


def parts_target(answer: str) -> str:
    """bert4keras's example training target of an answer found by :func:`answer_parts_in`."""
    return answer.replace(" ", ",")


def answer_in_passage(answer: str, text: str) -> bool:
    """Does a passage's answer belong to its (raw) passage: the answer without whitespace
    inside the passage without whitespace, or the example's parts test on the cleaned passage."""
    return "".join(answer.split()) in "".join(text.split()) or answer_parts_in(answer, clean_passage(text))


def read_native(
    path: str, stats: Counter | None = None, skip_bad_records: bool = False, clean: bool = False
) -> list[MrcQuestion]:
    """Read a WebQA/SogouQA-format file. Questions without (non-empty) passages are dropped
    and counted; empty passages are dropped and counted. A record that is not an object or
    lacks 'question'/'passages' is a DataError, or with ``skip_bad_records`` dropped,
    counted and logged (the shipped WebQA sample's last record is cut off). ``clean`` applies
    bert4keras's example rules (module docstring). A passage answer absent from its passage
    is repaired, or the file refused above the threshold (module docstring)."""
    stats = stats if stats is not None else Counter()
    questions = []
    bad: list[tuple[int | None, str, str]] = []
    absent: list[tuple[int | None, str]] = []
    n_answers = 0
    records = _load_json_records(path)
    n_records = len(records)
    for i, (lineno, rec) in enumerate(records):
        where = _where(i, rec)
        missing = [k for k in ("question", "passages") if not isinstance(rec, dict) or k not in rec]
        if missing:
            what = (
                f"missing field {missing[0]!r}"
                if isinstance(rec, dict)
                else f"expected an object, got {type(rec).__name__}"
            )
            if not skip_bad_records:
                raise DataError(path, lineno, f"{where}: {what}")
            log.warning("%s: %s: %s (skipped)", path, where, what)
            bad.append((lineno, where, what))
            stats["bad_records_skipped"] += 1
            continue
        if not isinstance(rec["question"], str) or not isinstance(rec["passages"], list):
            raise DataError(path, lineno, f"{where}: 'question' must be a string and 'passages' a list")
        passages, answers = [], []
        for j, p in enumerate(rec["passages"]):
            if not isinstance(p, dict) or "passage" not in p:
                raise DataError(path, lineno, f"{where}: passage {j + 1} lacks the field 'passage'")
            text, ans = p["passage"], p.get("answer", "")
            if not isinstance(text, str) or not isinstance(ans, str):
                raise DataError(path, lineno, f"{where}: passage {j + 1}: 'passage' and 'answer' must be strings")
            if not text.strip():
                stats["empty_passages_dropped"] += 1
                continue
            ans = ans.strip()
            if ans:
                n_answers += 1
                answers.append(ans)
                if " " in ans:
                    stats["passage_answers_with_space_separated_parts"] += 1
                if not answer_in_passage(ans, text):
                    absent.append((lineno, f"{where}, passage {j + 1}: answer {ans[:40]!r}"))
                    ans = ""
                elif clean and not answer_parts_in(ans, clean_passage(text)):
                    stats["passage_answers_hidden_by_the_cleaning"] += 1
            passages.append(Passage(clean_passage(text) if clean else text, ans))
        if not passages:
            stats["questions_without_passages_dropped"] += 1
            continue
        answers = list(dict.fromkeys(answers))
        if not answers:
            stats["questions_without_answer"] += 1
        questions.append(MrcQuestion(str(rec.get("id", f"{path}#{i + 1}")), rec["question"], passages, answers))
    skipped = len(bad)
    if skipped and skipped > max(1, MAX_BAD_FRACTION * n_records):
        lineno, where, what = bad[0]
        raise DataError(
            path,
            lineno,
            f"{where}: expected a record with 'question' and 'passages', found {what} ({skipped} of {n_records} "
            f"records, more than {MAX_BAD_FRACTION:.0%}; data.skip_bad_records skips only a few); wrong file?",
        )
    if absent:
        if len(absent) > max(1, MAX_BAD_FRACTION * n_answers):
            lineno, what = absent[0]
            raise DataError(
                path,
                lineno,
                f"{what} is not in its passage; {len(absent)} of {n_answers} passage answers are not, more "
                f"than {MAX_BAD_FRACTION:.0%}: answers and passages do not belong together",
            )
        stats["passage_answers_not_in_passage"] += len(absent)
        log.warning(
            "%s: %d of %d passage answers are not in their passages: those passages are taken as without the "
            "answer, the text stays a gold answer for scoring (data_stats passage_answers_not_in_passage; more "
            "than %.0f%% stops)",
            path,
            len(absent),
            n_answers,
            100 * MAX_BAD_FRACTION,
        )
    stats["questions"] += len(questions)
    return questions


# ---------------------------------------------------------------------------- CMRC 2018
def token_positions(text: str) -> list[int]:
    """Char offsets of the tokens of ``text`` (every non-whitespace character)."""
    return [i for i, ch in enumerate(text) if not ch.isspace()]


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Token starts of the windows: 0, stride, 2*stride, ... until a window reaches the end."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + stride)
    return starts


def _locate(context: str, text: str, start: int) -> int | None:
    """The answer's char start: ``start`` when it matches, else the nearest occurrence."""
    if 0 <= start and context[start : start + len(text)] == text:
        return start
    occ, i = [], context.find(text)
    while i >= 0:
        occ.append(i)
        i = context.find(text, i + 1)
    return min(occ, key=lambda o: abs(o - start)) if occ else None


def cmrc_question_windows(context: str, spans: Sequence[tuple[str, int]], window: int, stride: int) -> list[Passage]:
    """The windows of one context as passages; ``spans`` are the located gold answers
    (text, char start) in priority order. A window's answer is the first span inside it."""
    pos = token_positions(context)
    if not pos:
        return []
    passages = []
    for s in window_starts(len(pos), window, stride):
        e = min(s + window, len(pos))
        c0, c1 = pos[s], pos[e - 1] + 1  # the window's char range [c0, c1)
        ans, a_start = "", None
        for text, a in spans:
            if a >= c0 and a + len(text) <= c1:
                ans, a_start = text, a - c0
                break
        passages.append(Passage(context[c0:c1], ans, a_start, c0))
    return passages


def read_cmrc(
    path: str, window: int = 255, stride: int = 128, stats: Counter | None = None
) -> dict[str, list[MrcQuestion]]:
    """CMRC 2018 / SQuAD JSON -> {"train", "val", "test"} lists of windowed questions."""
    stats = stats if stats is not None else Counter()
    repaired_before = stats["answer_starts_repaired"]
    records = _load_json_records(path)
    if len(records) != 1 or not isinstance(records[0][1], dict) or "data" not in records[0][1]:
        raise DataError(path, None, "not SQuAD-style JSON: expected one object with a 'data' list")
    out: dict[str, list[MrcQuestion]] = {s: [] for s in SPLITS}
    for a_i, article in enumerate(records[0][1]["data"]):
        for p_i, para in enumerate(article.get("paragraphs", []) if isinstance(article, dict) else []):
            where = f"article {a_i + 1}, paragraph {p_i + 1}"
            if not isinstance(para, dict) or "context" not in para or "qas" not in para:
                raise DataError(path, None, f"{where}: missing field 'context' or 'qas'")
            context = para["context"]
            if not isinstance(context, str) or not isinstance(para["qas"], list):
                raise DataError(
                    path,
                    None,
                    f"{where}: expected a string 'context' and a list 'qas', found "
                    f"{type(context).__name__} and {type(para['qas']).__name__}",
                )
            split = split_of_context(context)
            stats[f"{split}_contexts"] += 1
            for qa in para["qas"]:
                qid = qa.get("id", "?") if isinstance(qa, dict) else "?"
                if not isinstance(qa, dict) or "question" not in qa or "answers" not in qa:
                    raise DataError(path, None, f"{where}, question {qid!r}: missing field 'question' or 'answers'")
                if not isinstance(qa["question"], str) or not isinstance(qa["answers"], list):
                    raise DataError(
                        path,
                        None,
                        f"{where}, question {qid!r}: expected a string 'question' and a list 'answers', found "
                        f"{type(qa['question']).__name__} and {type(qa['answers']).__name__}",
                    )
                spans, texts = [], []
                for ans in qa["answers"]:
                    if not isinstance(ans, dict) or "text" not in ans or "answer_start" not in ans:
                        raise DataError(path, None, f"question {qid!r}: an answer lacks 'text' or 'answer_start'")
                    if (
                        not isinstance(ans["text"], str)
                        or isinstance(ans["answer_start"], bool)
                        or not isinstance(ans["answer_start"], int)
                    ):
                        raise DataError(
                            path,
                            None,
                            f"question {qid!r}: expected a string 'text' and an integer 'answer_start', found "
                            f"{ans['text']!r} and {ans['answer_start']!r}",
                        )
                    text, start = ans["text"].strip(), ans["answer_start"]
                    if not text:
                        stats["empty_answers_dropped"] += 1
                        continue
                    texts.append(text)
                    loc = _locate(context, text, start)
                    if loc is None:
                        if start >= 0:
                            raise DataError(
                                path,
                                None,
                                f"question {qid!r}: answer {text[:40]!r} (answer_start {start}) is not in its context",
                            )
                        stats["answers_not_in_context_scoring_only"] += 1
                        continue
                    if loc != start:
                        stats["answer_starts_repaired"] += 1
                    spans.append((text, loc))
                if not spans:
                    raise DataError(path, None, f"question {qid!r}: none of its answers occurs in its context")
                passages = cmrc_question_windows(context, spans, window, stride)
                stats["windows"] += len(passages)
                if not any(p.answer for p in passages):
                    stats["answers_in_no_window"] += 1
                out[split].append(MrcQuestion(str(qid), str(qa["question"]), passages, list(dict.fromkeys(texts))))
    for s in SPLITS:
        stats[f"{s}_questions"] += len(out[s])
    repaired = stats["answer_starts_repaired"] - repaired_before
    if repaired:
        log.warning(
            "%s: %d answer_start(s) did not point at their answer text and were moved to its nearest "
            "occurrence (data_stats answer_starts_repaired)",
            path,
            repaired,
        )
    return out


def split_of_question(question: MrcQuestion) -> str:
    """The split of a native-format question without fixed splits: the same hash rule on
    its question text."""
    return split_of_context(question.question)


# ---------------------------------------------------------------------------- bounds/baselines
def layout_oracle(question: MrcQuestion, max_answer_tokens: int) -> str:
    """The best answer a decoder can give under the layout: a run of at most
    ``max_answer_tokens`` tokens of one passage. A gold answer that lies in a passage and
    fits is perfect; otherwise the candidates are, per passage and gold answer, the longest
    piece of the answer inside the passage cut to its first ``max_answer_tokens`` tokens,
    and the best (Acc, F1) candidate is returned. (A lower bound of the true ceiling: it
    does not search every run of the passage.)"""
    golds = ["".join(g.split()) for g in question.answers]
    compacts = ["".join(p.text.split()) for p in question.passages]
    for g in golds:
        if g and len(g) <= max_answer_tokens and any(g in c for c in compacts):
            return g
    best, best_key = "", (-1.0, -1.0)
    for c in compacts:
        for g in golds:
            piece = g if g in c else _longest_common_substring(c, g)
            piece = piece[:max_answer_tokens]
            if piece:
                key = score_answer(piece, question.answers)
                if key > best_key:
                    best, best_key = piece, key
    return best


def _longest_common_substring(a: str, b: str) -> str:
    """Longest common substring (dynamic programming, O(len(a) * len(b)))."""
    if not a or not b:
        return ""
    prev = [0] * (len(b) + 1)
    best_len, best_end = 0, 0
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        ai = a[i - 1]
        for j in range(1, len(b) + 1):
            if ai == b[j - 1]:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best_len:
                    best_len, best_end = cur[j], i
        prev = cur
    return a[best_end - best_len : best_end]


BASELINE_RULE = "most frequent first-gold-answer length (non-space chars) of the training questions; ties -> shorter"


def baseline_answer_len(train_questions: Sequence[MrcQuestion]) -> int:
    """The trivial baseline's answer length, chosen from the TRAINING split only
    (:data:`BASELINE_RULE`): the most frequent length, in non-whitespace characters, of the
    training questions' first gold answer (questions without an answer skipped); ties go to
    the shorter length; 1 when no training question has an answer."""
    counts = Counter(len("".join(q.answers[0].split())) for q in train_questions if q.answers)
    counts.pop(0, None)
    if not counts:
        return 1
    return min(counts, key=lambda n: (-counts[n], n))


def overlap_baseline(question: MrcQuestion, answer_len: int) -> str:
    """Trivial baseline: among the passage token runs of ``answer_len`` tokens (chosen on the
    training split by :func:`baseline_answer_len`), the one sharing the most characters
    (multiset) with the question; ties -> first; "" when no passage is that long. It never
    reads ``question.answers``."""
    n = int(answer_len)
    if n < 1:
        raise ValueError(f"answer_len must be >= 1, got {answer_len}")
    q = Counter("".join(question.question.split()))
    best, best_overlap = "", -1
    for p in question.passages:
        toks = "".join(p.text.split())
        if len(toks) < n:
            continue
        win = Counter(toks[:n])
        ov = sum((win & q).values())
        for i in range(len(toks) - n + 1):
            if i:
                out, inn = toks[i - 1], toks[i + n - 1]
                if out != inn:
                    ov -= min(win[out], q[out]) - min(win[out] - 1, q[out])
                    win[out] -= 1
                    ov += min(win[inn] + 1, q[inn]) - min(win[inn], q[inn])
                    win[inn] += 1
            if ov > best_overlap:
                best, best_overlap = toks[i : i + n], ov
    return best
