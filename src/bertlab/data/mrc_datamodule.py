"""DataModule for reading comprehension by MLM (non-autoregressive answer decoding).

Input of one (question, passage) pair, all segment 0 (the post's layout)::

    [CLS] [MASK] x M [SEP] question (<= max_question_len tokens) [SEP] passage (<= max_passage_len) [SEP]

Targets (training) at the M mask positions: the answer tokens, then [SEP], then -100
(padding, excluded from the loss); an answer longer than M - 1 tokens is cut to M - 1
(counted). Training draws ONE random passage per question per step; its answer is, with
``answer_rule: first_found`` (the post), the first gold answer of the question whose tokens
occur in that passage, else the empty answer ([SEP] only); with ``answer_rule: passage`` it
is the passage's own answer (CMRC windows: the gold span inside the window, by position).
``bert4keras_cleaning`` (native files; on in ``data=mrc_webqa_sogouqa``) applies bert4keras's
example rules (:mod:`bertlab.data.mrc`): passages, also those given to ``predict``, have
`` ``/``、``/``；``/``，`` turned into ``,``, and first_found takes the first gold answer whose
space-separated parts all lie in the first ``max_passage_len - 1`` characters of the cleaned
passage, its target the answer with ``,`` for each space (``answer_rule: passage``: the
passage's own answer, by the same test and target).

Evaluation feeds every passage of a question (a question's passages always share one
batch, so one forward pass covers them); the model decodes each passage
(:mod:`bertlab.decoding.constrained`), :meth:`decode` maps each passage's answer tokens back to
the passage text through the kept character offsets, and the task votes across a question's
passages (:func:`bertlab.tasks.mlm_reading_comprehension.vote_passages`).

Tokens are characters (:class:`~bertlab.data.tokenization.CharTokenizer`, whitespace
skipped), or with ``data.tokenizer: wordpiece`` BERT's WordPiece tokens: an answer is then a
token span of its passage, located by characters (the first occurrence whose boundaries are
token boundaries; by position with ``answer_start``) and mapped through the offsets
(:mod:`bertlab.data.alignment`); an answer found only with a boundary inside a token gives
no target (counted: ``train_answers_inside_tokens``, WARNING); a decoded answer's tokens map
back to the passage text from the first token's first character to the last token's last. Sources: ``source: cmrc2018`` (SQuAD JSON converted and split by context, see
:mod:`bertlab.data.mrc`) or ``source: native`` (WebQA/SogouQA files; ``val_files`` /
``test_files`` or, when absent, the same hash rule on the question text).

``overfit_questions: N`` trains on the first N training questions and evaluates on the SAME
questions (val and test); the metrics then carry ``evaluated_on: training questions (overfit
check)`` instead of ``held-out questions``.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from bertlab.data.alignment import token_span
from bertlab.data.base import CharDataModule
from bertlab.data.mrc import (
    SPLITS,
    MrcQuestion,
    Passage,
    answer_parts_in,
    clean_passage,
    parts_target,
    read_cmrc,
    read_native,
    split_of_question,
)
from bertlab.data.samplers import ResumableDataLoader, random_batch_sampler
from bertlab.utils.errors import ConfigError, DataError

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class EncodedPassage:
    ids: list[int]
    #: char offset in the passage text of every token
    offsets: list[int]
    #: training target: answer ids (no [SEP]); empty = no answer in this passage
    answer_ids: list[int]
    #: one past the last char of every token (char mode: offsets + 1)
    ends: list[int] = field(default_factory=list)


@dataclass
class EncodedQuestion:
    question_ids: list[int]
    passages: list[EncodedPassage]


class _TrainSet(Dataset):
    """Item i = question i with one of its passages drawn at random, the draw a function of
    (seed, the training sampler's epoch, i): the same in a resumed run as in the
    uninterrupted one, whatever was drawn before."""

    def __init__(self, dm: MrcDataModule, questions: list[EncodedQuestion], seed: int):
        self.dm, self.questions, self.seed = dm, questions, seed
        self.sampler: Any = None  # the training batch sampler (its epoch), set by train_dataloader

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        q = self.questions[i]
        epoch = int(self.sampler.epoch) if self.sampler is not None else 0
        p = q.passages[random.Random(f"{self.seed}:{epoch}:{i}").randrange(len(q.passages))]
        return self.dm.build_feature(q.question_ids, p, with_target=True, index=i)


@dataclass(frozen=True)
class ReadingEvalData:
    """What scoring a reading-comprehension split reads (:meth:`MrcDataModule.eval_data`): its
    questions, ``refs`` (feature index -> (question index, passage index)), the number of
    passage features, the split's ``decode`` (``{feature index: answer}`` -> per question its
    passages' candidates), the answer slots M (``max_answer_len``), the training questions (the
    baseline's answer length), what was evaluated (``evaluated_on``) and the corpus (``source``)."""

    split: str
    questions: list[MrcQuestion]
    refs: list[tuple[int, int]]
    n_features: int
    decode: Callable[[Mapping[int, Mapping[str, Any]]], list[list[dict[str, Any]]]]
    max_answer_len: int
    train_questions: list[MrcQuestion]
    evaluated_on: str
    source: str


class MrcDataModule(CharDataModule):
    def __init__(
        self,
        vocab_file: str,
        source: str = "cmrc2018",
        data_dir: str = ".",
        files: Sequence[str] = (),
        val_files: Sequence[str] | None = None,
        test_files: Sequence[str] | None = None,
        max_answer_len: int = 32,
        max_question_len: int = 63,
        max_passage_len: int = 255,
        window_stride: int = 128,
        answer_rule: str = "first_found",
        skip_bad_records: bool = False,
        bert4keras_cleaning: bool = False,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        max_train_questions: int | None = None,
        overfit_questions: int | None = None,
        max_eval_questions: int | None = None,
        max_train_chars: int | None = None,
        max_eval_sentences: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        trim_vocab: str = "none",
        tokenizer: str = "char",
    ):
        super().__init__()
        self.save_hyperparameters(logger=False)
        if source not in ("cmrc2018", "native"):
            raise ConfigError("data.source", f"must be cmrc2018 or native, got {source!r}")
        if answer_rule not in ("first_found", "passage"):
            raise ConfigError("data.answer_rule", f"must be first_found or passage, got {answer_rule!r}")
        if bert4keras_cleaning and source != "native":
            raise ConfigError("data.bert4keras_cleaning", f"applies to source: native only, not {source!r}")
        if max_answer_len < 2:
            raise ConfigError("data.max_answer_len", f"must be >= 2 (an answer token and [SEP]), got {max_answer_len}")
        for key in ("max_question_len", "max_passage_len", "window_stride"):
            if int(getattr(self.hparams, key)) < 1:
                raise ConfigError(f"data.{key}", "must be >= 1")
        if not files:
            raise ConfigError("data.files", "no input files")
        if overfit_questions is not None and int(overfit_questions) < 1:
            raise ConfigError("data.overfit_questions", f"must be >= 1 or null, got {overfit_questions}")
        self.questions: dict[str, list[MrcQuestion]] = {}
        self.encoded: dict[str, list[EncodedQuestion]] = {}
        self.features: dict[str, list[dict[str, Any]]] = {}
        #: feature index -> (question index, passage index) per evaluation split
        self.refs: dict[str, list[tuple[int, int]]] = {}
        self._counts: Counter = Counter()
        self._train_set: _TrainSet | None = None
        self.evaluated_on = "held-out questions"

    # ------------------------------------------------------------------ reading
    def _path(self, f: str) -> str:
        return f if os.path.isabs(f) else os.path.join(self.hparams.data_dir, f)

    def read_questions(self) -> dict[str, list[MrcQuestion]]:
        hp, counts = self.hparams, self._counts
        out: dict[str, list[MrcQuestion]] = {s: [] for s in SPLITS}
        if hp.source == "cmrc2018":
            for f in hp.files:
                for split, qs in read_cmrc(self._path(f), hp.max_passage_len, hp.window_stride, counts).items():
                    out[split] += qs
            return out
        fixed = {"val": hp.val_files, "test": hp.test_files}
        for f in hp.files:
            for q in read_native(self._path(f), counts, hp.skip_bad_records, hp.bert4keras_cleaning):
                split = "train" if all(fixed.values()) else split_of_question(q)
                if fixed.get(split):  # that split comes from its own files
                    split = "train"
                out[split].append(q)
        for split, files in fixed.items():
            for f in files or ():
                out[split] += read_native(self._path(f), counts, hp.skip_bad_records, hp.bert4keras_cleaning)
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        hp = self.hparams
        self.questions = self.read_questions()
        train = self.questions["train"]
        if hp.max_train_questions or hp.max_train_chars:
            order = list(range(len(train)))
            random.Random(hp.seed).shuffle(order)
            keep: list[int] = []
            chars = 0
            for i in order:
                if hp.max_train_questions and len(keep) >= hp.max_train_questions:
                    break
                n = sum(len(p.text) for p in train[i].passages)
                if hp.max_train_chars and chars + n > hp.max_train_chars and keep:
                    break
                keep.append(i)
                chars += n
            self.questions["train"] = [train[i] for i in sorted(keep)]
        if hp.overfit_questions:
            train = self.questions["train"][: int(hp.overfit_questions)]
            self.questions.update(train=train, val=list(train), test=list(train))
            self.evaluated_on = "training questions (overfit check)"
        max_eval = hp.max_eval_questions or hp.max_eval_sentences
        if max_eval:
            for s in ("val", "test"):
                self.questions[s] = self.questions[s][: int(max_eval)]
        if not self.questions["train"]:
            raise DataError(",".join(hp.files), None, "no training questions")
        self._make_tokenizer(text for q in self.questions["train"] for text in self._texts(q))
        for split in SPLITS:
            self.encoded[split] = [
                self.encode_question(q, with_targets=split == "train") for q in self.questions[split]
            ]
            if split != "train":
                self.refs[split], self.features[split] = self._eval_features(self.encoded[split])
        self.stats = {
            **dict(self._counts),
            **{f"{s}_questions_used": len(self.questions[s]) for s in SPLITS},
            "vocab_size": len(self.ensure_tokenizer()),
        }
        log.info("MRC data: %s", self.stats)
        if self._counts["train_answers_inside_tokens"]:
            log.warning(
                "%d training answers occur in their passage only with a boundary inside a WordPiece token "
                "(data.tokenizer=wordpiece): no target for those passages",
                self._counts["train_answers_inside_tokens"],
            )
        if self._counts["passages_truncated"]:
            log.warning(
                "%d passages longer than %d tokens were truncated",
                self._counts["passages_truncated"],
                hp.max_passage_len,
            )

    @staticmethod
    def _texts(q: MrcQuestion) -> list[str]:
        return [q.question, *(p.text for p in q.passages), *q.answers]

    def _make_tokenizer(self, training_chars: Iterable[str] = ()) -> None:
        self.build_tokenizer(training_chars)
        if "[MASK]" not in self.ensure_tokenizer().vocab:
            raise DataError(self.hparams.vocab_file, None, "vocab lacks the special token [MASK]")

    @property
    def mask_id(self) -> int:
        assert self.tokenizer is not None
        return self.tokenizer.vocab["[MASK]"]

    # ------------------------------------------------------------------ features
    def _ids(self, text: str) -> tuple[list[int], list[int]]:
        ids, offsets, _ = self._encode(text)
        return ids, offsets

    def _encode(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """ids, first-character offsets and end offsets of ``text``'s tokens (no [CLS]/[SEP])."""
        assert self.tokenizer is not None
        enc = self.tokenizer.encode(text)
        return enc.ids[1:-1], enc.offsets[1:-1], enc.ends[1:-1]

    def encode_question(self, q: MrcQuestion, with_targets: bool) -> EncodedQuestion:
        hp = self.hparams
        q_ids, _ = self._ids(q.question)
        if len(q_ids) > hp.max_question_len:
            self._counts["questions_truncated"] += 1
            q_ids = q_ids[: hp.max_question_len]
        gold_ids = [self._ids(a)[0] for a in q.answers]
        passages = []
        for p in q.passages:
            ids, offs, ends = self._encode(p.text)
            if len(ids) > hp.max_passage_len:
                self._counts["passages_truncated"] += 1
                ids, offs, ends = ids[: hp.max_passage_len], offs[: hp.max_passage_len], ends[: hp.max_passage_len]
            ans: list[int] = []
            if with_targets:
                if self.wordpiece and not hp.bert4keras_cleaning:
                    ans = self._target_span(p, ids, offs, ends, q.answers)
                else:
                    ans = self._target_answer(p, ids, offs, gold_ids, q.answers)
                if len(ans) > hp.max_answer_len - 1:
                    self._counts["train_answers_cut_to_max_answer_len"] += 1
                    ans = ans[: hp.max_answer_len - 1]
            passages.append(EncodedPassage(ids, offs, ans, ends))
        return EncodedQuestion(q_ids, passages)

    def _target_answer(
        self, p: Passage, ids: list[int], offs: list[int], gold_ids: list[list[int]], golds: Sequence[str]
    ) -> list[int]:
        if self.hparams.bert4keras_cleaning:
            # the example: the first gold whose parts all lie in passage[:max_p_len - 2] (max_p_len =
            # max_passage_len + 1), its spaces written as ","; answer_rule passage: the passage's own answer
            seen = p.text[: self.hparams.max_passage_len - 1]
            texts = golds if self.hparams.answer_rule == "first_found" else [p.answer] if p.answer else []
            for g in texts:
                if answer_parts_in(g, seen):
                    return self._ids(parts_target(g))[0]
            return []
        if self.hparams.answer_rule == "passage":
            if not p.answer:
                return []
            if p.answer_start is not None:  # by position
                a0, a1 = p.answer_start, p.answer_start + len(p.answer)
                span = [i for i, o in enumerate(offs) if a0 <= o < a1]
                return [ids[i] for i in span] if span and offs[-1] >= a1 - 1 else []
            cands = [self._ids(p.answer)[0]]
        else:
            cands = gold_ids
        for a in cands:
            if a and _contains(ids, a):
                return list(a)
        return []

    def _target_span(
        self, p: Passage, ids: list[int], offs: list[int], ends: list[int], golds: Sequence[str]
    ) -> list[int]:
        """WordPiece: the target as a token span of the passage (see the module doc): by position
        (``answer_rule: passage`` with ``answer_start``), else the first answer (the passage's own
        with ``passage``, the question's golds in order with ``first_found``) that occurs in the
        kept part of the passage with both boundaries on token boundaries."""
        if self.hparams.answer_rule == "passage":
            if not p.answer:
                return []
            if p.answer_start is not None:
                span = token_span(offs, ends, p.answer_start, p.answer_start + len(p.answer))
                if span is None and ends and ends[-1] >= p.answer_start + len(p.answer):
                    self._counts["train_answers_inside_tokens"] += 1
                return ids[span[0] : span[1] + 1] if span is not None else []
            cands: Sequence[str] = [p.answer]
        else:
            cands = golds
        inside = False
        for a in cands:
            start = p.text.find(a) if a else -1
            while start >= 0:
                span = token_span(offs, ends, start, start + len(a))
                if span is not None:
                    return ids[span[0] : span[1] + 1]
                inside = inside or (bool(ends) and ends[-1] >= start + len(a))
                start = p.text.find(a, start + 1)
        self._counts["train_answers_inside_tokens"] += inside
        return []

    def build_feature(self, q_ids: list[int], p: EncodedPassage, with_target: bool, index: int) -> dict[str, Any]:
        assert self.tokenizer is not None
        m, cls, sep = self.hparams.max_answer_len, self.tokenizer.cls_id, self.tokenizer.sep_id
        input_ids = [cls] + [self.mask_id] * m + [sep] + q_ids + [sep] + p.ids + [sep]
        feat: dict[str, Any] = {"input_ids": input_ids, "index": index, "passage": p.ids}
        if with_target:
            target = p.answer_ids + [sep]
            feat["labels"] = target + [IGNORE] * (m - len(target))
        return feat

    def _eval_features(self, encoded: list[EncodedQuestion]) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
        refs: list[tuple[int, int]] = []
        feats: list[dict[str, Any]] = []
        for qi, q in enumerate(encoded):
            for pj, p in enumerate(q.passages):
                feats.append(self.build_feature(q.question_ids, p, with_target=False, index=len(feats)))
                refs.append((qi, pj))
        return refs, feats

    # ------------------------------------------------------------------ loaders
    def collate(self, feats: Sequence[dict[str, Any]]) -> dict[str, Any]:
        assert self.tokenizer is not None
        longest = max(len(f["input_ids"]) for f in feats)
        ids = torch.full((len(feats), longest), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(feats), longest), dtype=torch.bool)
        for i, f in enumerate(feats):
            ids[i, : len(f["input_ids"])] = torch.as_tensor(f["input_ids"])
            mask[i, : len(f["input_ids"])] = True
        batch: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "index": torch.as_tensor([f["index"] for f in feats]),
            "passages": [f["passage"] for f in feats],
        }
        if "labels" in feats[0]:
            batch["labels"] = torch.as_tensor([f["labels"] for f in feats], dtype=torch.long)
        return batch

    def _question_batches(self, split: str) -> list[list[int]]:
        """Whole questions per batch, at most eval_batch_size features (one big question alone)."""
        batches: list[list[int]] = []
        cur: list[int] = []
        last_q = None
        group: list[int] = []
        for i, (qi, _) in enumerate(self.refs[split] + [(-1, -1)]):
            if qi != last_q and group:
                if cur and len(cur) + len(group) > self.hparams.eval_batch_size:
                    batches.append(cur)
                    cur = []
                cur = cur + group
                group = []
            if qi >= 0:
                group.append(i)
            last_q = qi
        if cur:
            batches.append(cur)
        return batches

    def train_dataloader(self) -> DataLoader:
        if self._train_set is None:
            self._train_set = _TrainSet(self, self.encoded["train"], self.hparams.seed)
        sampler = random_batch_sampler(len(self._train_set), self.hparams.batch_size, self.hparams.seed)
        self._train_set.sampler = sampler
        return ResumableDataLoader(
            self._train_set,
            batch_sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.hparams.num_workers,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.features[split],  # type: ignore[arg-type]  # a list is a map-style dataset; torch declares Dataset
            batch_sampler=self._question_batches(split),
            collate_fn=self.collate,
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def model_kwargs(self) -> dict[str, Any]:
        kwargs = super().model_kwargs()
        assert self.tokenizer is not None
        return {
            **kwargs,
            "max_answer_len": self.hparams.max_answer_len,
            "sep_id": self.tokenizer.sep_id,
            "mask_id": self.mask_id,
        }

    def eval_data(self, split: str) -> ReadingEvalData:
        """What scoring ``split`` reads (after ``setup``)."""
        hp = self.hparams
        return ReadingEvalData(
            split=split,
            questions=self.questions[split],
            refs=self.refs[split],
            n_features=len(self.features[split]),
            decode=partial(self.decode, split),
            max_answer_len=int(hp["max_answer_len"]),
            train_questions=self.questions.get("train") or [],
            evaluated_on=self.evaluated_on,
            source=str(hp["source"]),
        )

    # ------------------------------------------------------------------ prediction
    def set_predict_texts(self, inputs: Sequence[Any]) -> None:
        """Inputs for ``predict_dataloader``: dicts ``{"question", "passages": [str | {"passage"}]}``
        (or such a dict as a JSON string)."""
        if self.tokenizer is None:
            self._make_tokenizer()
        qs = []
        for i, rec in enumerate(inputs):
            if isinstance(rec, str):
                try:
                    rec = json.loads(rec)
                except json.JSONDecodeError as err:
                    raise DataError(
                        "<predict input>", i + 1, f"expected a JSON object with 'question' and 'passages': {err.msg}"
                    ) from None
            if not isinstance(rec, Mapping) or "question" not in rec or not rec.get("passages"):
                raise DataError("<predict input>", i + 1, "needs a 'question' and a non-empty list 'passages'")
            texts = [p["passage"] if isinstance(p, Mapping) else str(p) for p in rec["passages"]]
            ps = [Passage(clean_passage(t) if self.hparams.bert4keras_cleaning else t) for t in texts if t.strip()]
            if not ps:
                raise DataError("<predict input>", i + 1, "every passage is empty")
            qs.append(MrcQuestion(str(rec.get("id", i)), str(rec["question"]), ps, []))
        self.questions["predict"] = qs
        self.encoded["predict"] = [self.encode_question(q, with_targets=False) for q in qs]
        self.refs["predict"], self.features["predict"] = self._eval_features(self.encoded["predict"])

    def _candidate_text(self, split: str, feat_idx: int, pred: Mapping[str, Any]) -> str:
        qi, pj = self.refs[split][feat_idx]
        p = self.encoded[split][qi].passages[pj]
        toks, start = list(pred["tokens"]), int(pred["start"])
        if not toks:
            return ""
        if start >= 0:
            text = self.questions[split][qi].passages[pj].text
            return text[p.offsets[start] : p.ends[start + len(toks) - 1]]
        assert self.tokenizer is not None  # not a passage run (unconstrained decoding)
        return "".join(self.tokenizer.tokens[t].removeprefix("##") for t in toks)

    def decode(self, split: str, predictions: Mapping[int, Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """Per question, its passages' candidates in passage order: ``{"passage": j, "answer":
        text, "score", "tokens": the answer's token ids}`` (the vote across them is the task's)."""
        out: list[list[dict[str, Any]]] = [[] for _ in self.questions[split]]
        for idx in sorted(predictions):
            pred = predictions[idx]
            qi, pj = self.refs[split][idx]
            text = self._candidate_text(split, idx, pred)
            out[qi].append(
                {"passage": pj, "answer": text, "score": float(pred["score"]), "tokens": tuple(pred["tokens"])}
            )
        return out

    def format_prediction(self, record: Any, decoded: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(record, str):
            record = json.loads(record)
        return {"question": record["question"], **decoded}

    def save_outputs(self, split: str, outputs: list[Any], out_dir: str) -> list[str]:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{split}_answers.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for rec in outputs:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return [path]


def _contains(seq: Sequence[int], sub: Sequence[int]) -> bool:
    n = len(sub)
    return any(seq[i] == sub[0] and list(seq[i : i + n]) == list(sub) for i in range(len(seq) - n + 1))
