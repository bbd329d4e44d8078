"""Reading comprehension by MLM: the encoder's MLM head fills M [MASK] slots with the answer.

Thin: the encoder and its MLM head come from :func:`bertlab.nn.encoders.build_encoder`
(``with_mlm_head=True``: a loaded checkpoint keeps its trained head), the vocab may be
trimmed (``vocab_keep_ids``), the head runs ONLY on the M mask positions (sliced out of the
hidden states before the head, never all positions), and decoding lives in
:mod:`bertlab.decoding.constrained`. The DataModule maps each passage's answer tokens to
text (its evaluation data: :class:`bertlab.data.mrc_datamodule.ReadingEvalData`), :func:`vote_passages` votes across a question's passages (``best_answer``), and
:func:`score_answers` scores; validation/test (also under DDP) run through
:class:`bertlab.tasks.evaluation.EvalCollector`.

``decoding``:
- ``constrained`` (the post): all M slots from one forward pass, passage n-gram constraint;
- ``argmax``: the same forward pass, plain argmax per slot (ablation);
- ``autoregressive``: the speed baseline, one forward pass per slot (slot k is filled,
  with the same constraint, before slot k+1 is predicted), batched like the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bertlab.data.base import CharDataModule
from bertlab.data.mrc import BASELINE_RULE, baseline_answer_len, layout_oracle, overlap_baseline
from bertlab.data.mrc_datamodule import ReadingEvalData
from bertlab.decoding.constrained import PassageAnswer, PrefixConstraint, best_answer, decode_batch
from bertlab.metrics.reading_comprehension import reading_comprehension_scores
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector
from bertlab.utils.errors import ConfigError

log = logging.getLogger(__name__)

DECODINGS = ("constrained", "argmax", "autoregressive")


class MlmReadingComprehensionModule(EvalCollector, BertlabTask):
    monitor = "val/final"

    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        max_answer_len: int = 32,
        sep_id: int = 102,
        mask_id: int = 103,
        decoding: str = "constrained",
        vocab_keep_ids: list[int] | None = None,
    ):
        if decoding not in DECODINGS:
            raise ConfigError("model.decoding", f"must be one of {list(DECODINGS)}, got {decoding!r}")
        super().__init__(
            encoder=encoder,
            optimizer=optimizer,
            scheduler=scheduler,
            max_answer_len=max_answer_len,
            sep_id=sep_id,
            mask_id=mask_id,
            decoding=decoding,
            vocab_keep_ids=vocab_keep_ids,
        )
        self.encoder, self.mlm_head = self.build_encoder(with_mlm_head=True)
        self._bounds: dict[str, dict[str, float]] = {}  # split -> oracle / baseline scores (fixed by the data)

    # ------------------------------------------------------------------ model
    def mask_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits at the M mask slots (positions 1..M). Returns shape: [B, M, V]."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        slots = hidden[:, 1 : 1 + self.hparams.max_answer_len]  # shape: [B, M, H]; the head sees only these
        return self.mlm_head(slots)

    def loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over the target slots (answer tokens and [SEP]; -100 slots excluded)."""
        logits = self.mask_logits(batch["input_ids"], batch["attention_mask"])
        labels = batch["labels"]  # shape: [B, M]
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].size(0))
        return loss

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def decode_batch(self, batch: Mapping[str, Any], decoding: str | None = None) -> list[PassageAnswer]:
        decoding = decoding or self.hparams.decoding
        if decoding == "autoregressive":
            return self._autoregressive(batch)
        probs = self.mask_logits(batch["input_ids"], batch["attention_mask"]).float().softmax(-1)
        return decode_batch(probs, batch["passages"], self.hparams.sep_id, constrained=decoding == "constrained")

    def _autoregressive(self, batch: Mapping[str, Any]) -> list[PassageAnswer]:
        """One forward pass per slot over the passages still decoding; slot k is filled with the
        constrained choice before slot k+1 is predicted."""
        ids = batch["input_ids"].clone()
        mask = batch["attention_mask"]
        sep = self.hparams.sep_id
        states = [PrefixConstraint(p, sep) for p in batch["passages"]]
        answers = [PassageAnswer([], []) for _ in states]
        for k in range(self.hparams.max_answer_len):
            alive = [b for b, s in enumerate(states) if not s.done]
            if not alive:
                break
            rows = torch.as_tensor(alive, device=ids.device)
            hidden = self.encoder(input_ids=ids[rows], attention_mask=mask[rows].long()).last_hidden_state
            probs = self.mlm_head(hidden[:, 1 + k]).float().softmax(-1).cpu()  # shape: [alive, V]
            for r, b in enumerate(alive):
                tok, p = states[b].choose(probs[r])
                answers[b].probs.append(p)
                states[b].push(tok)
                ids[b, 1 + k] = tok
                if tok != sep:
                    answers[b].tokens.append(tok)
        for a, s in zip(answers, states):
            a.start = s.first_start
        return answers

    def _predict(self, batch: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
        answers = self.decode_batch(batch)
        return {
            i: {"tokens": a.tokens, "start": a.start, "score": a.score}
            for i, a in zip(batch["index"].tolist(), answers)
        }

    # ------------------------------------------------------------------ evaluation
    eval_hidden_prefixes = ("oracle_", "baseline_")

    def eval_predictions(self, batch: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
        """Feature (passage) index -> its answer (validation/test through :class:`EvalCollector`)."""
        return self._predict(batch)

    def eval_score(self, split: str, predictions: Mapping[int, Mapping[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
        return score_answers(self.eval_data(split, ReadingEvalData), predictions, self._bounds)

    def decode_predictions(
        self, datamodule: CharDataModule, split: str, predictions: Mapping[int, Any]
    ) -> list[dict[str, Any]]:
        """One voted answer per question (:func:`vote_passages` of the DataModule's candidates)."""
        return vote_passages(datamodule.decode(split, predictions))

    def eval_extra_metrics(self, split, predictions, step_seconds, wall_seconds) -> dict[str, Any]:
        refs = self.eval_data(split, ReadingEvalData).refs
        n_q = len({refs[i][0] for i in predictions})
        return {"decode_seconds": step_seconds, "questions_per_s": n_q / step_seconds if step_seconds else 0.0}

    def eval_table(self, split: str, outputs: list[dict[str, Any]]):
        return ["id", "question", "gold", "answer", "score", "correct"], [
            [
                o["id"],
                o["question"],
                " | ".join(o["gold"]),
                o["answer"],
                None if o["score"] is None else float(o["score"]),
                o["answer"] in o["gold"],
            ]
            for o in outputs
            if o["candidates"]
        ]

    def predict_step(self, batch, batch_idx=0):
        return self._predict(batch)


def vote_passages(candidates: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per question (its passages' candidates, as ``MrcDataModule.decode`` gives them): the
    answer voted across passages (:func:`~bertlab.decoding.constrained.best_answer` over the
    answers' token ids; "" when every passage gave the empty answer), its vote score and every
    passage's candidate (passage, answer, score)."""
    out = []
    for cands in candidates:
        texts: dict[Any, str] = {}
        for c in cands:
            texts.setdefault(c["tokens"], c["answer"])
        key, score = best_answer((c["tokens"], c["score"]) for c in cands)
        listing = [{"passage": c["passage"], "answer": c["answer"], "score": c["score"]} for c in cands]
        out.append({"answer": texts[key] if key is not None else "", "score": score, "candidates": listing})
    return out


def score_answers(
    data: ReadingEvalData,
    predictions: Mapping[int, Mapping[str, Any]],
    bounds: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """(metrics, outputs) of an MRC split: each question's answer is voted across its passages
    (:func:`vote_passages` of ``data.decode``), :func:`reading_comprehension_scores` scores the
    questions that have a prediction; the split's bounds (ceiling, baselines) and
    ``evaluated_on`` are added."""
    split = data.split
    missing = data.n_features - len(predictions)
    decoded = vote_passages(data.decode(predictions))
    qs = data.questions
    answered = [i for i, q in enumerate(qs) if any(data.refs[j][0] == i for j in predictions)]
    if missing:
        log.warning(
            "%s: %d of %d passages have no prediction (a limited eval run?): scoring the %d questions that have one",
            split,
            missing,
            data.n_features,
            len(answered),
        )
    metrics: dict[str, Any] = reading_comprehension_scores(
        [decoded[i]["answer"] for i in answered], [qs[i].answers for i in answered]
    )
    metrics["no_answer_rate"] = sum(decoded[i]["answer"] == "" for i in answered) / max(len(answered), 1)
    if bounds is None:
        bounds = {}
    if split not in bounds:
        # the baseline's answer length comes from the training split only (never the evaluated golds)
        bounds[split] = answer_bounds(qs, data.max_answer_len, data.train_questions)
    metrics.update(bounds[split])
    metrics["evaluated_on"] = data.evaluated_on
    # the CMRC leaderboard reports the CMRC 2018 script's EM/F1; the post the Sogou tool's
    metrics["headline"] = "cmrc_em, cmrc_f1" if data.source == "cmrc2018" else "acc, f1, final"
    outputs = [{"id": q.id, "question": q.question, "gold": q.answers, **d} for q, d in zip(qs, decoded)]
    return metrics, outputs


def answer_bounds(questions: list[Any], max_answer_len: int, train_questions: list[Any]) -> dict[str, Any]:
    """The layout's ceiling (oracle answers of <= M - 1 tokens) and the trivial baseline, whose
    answer length is chosen on ``train_questions`` only (:func:`baseline_answer_len`)."""
    if not questions:
        return {}
    golds = [q.answers for q in questions]
    oracle = reading_comprehension_scores([layout_oracle(q, max_answer_len - 1) for q in questions], golds)
    n = baseline_answer_len(train_questions)
    base = reading_comprehension_scores([overlap_baseline(q, n) for q in questions], golds)
    keys = ("acc", "f1", "final", "cmrc_em", "cmrc_f1")
    return {
        **{f"oracle_{k}": oracle[k] for k in keys},
        **{f"baseline_{k}": base[k] for k in keys},
        "baseline_answer_len": n,
        "baseline_rule": BASELINE_RULE,
    }
