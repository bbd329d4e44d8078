"""Reading comprehension by UniLM seq2seq: post 6's comparison model next to the MLM reader.

The encoder reads ``[CLS] question [SEP] passage [SEP]`` (segment 0; ``data.source_order:
passage_first``: ``[CLS] passage [SEP] question [SEP]``, the post's order) and generates the answer
after it (segment 1) under the UniLM mask (:mod:`bertlab.nn.unilm`: bidirectional inside the
source, causal inside the target, the target sees the whole source); [SEP] ends the answer,
and an answer that is just [SEP] means "no answer in this passage". The LM head is the
encoder's MLM head (a loaded checkpoint keeps its trained head; trimmed vocab as the MLM
reader), run ONLY at the target positions (their hidden states are gathered before the
head); the loss is the mean cross-entropy over those positions.

Decoding (``decoding``):

- ``joint`` (post 6's decoder, :mod:`bertlab.decoding.joint`; needs ``source_order:
  passage_first``): ONE answer per question, all its passages decoded together: each step every
  live passage's next-token distribution (one batch), step 0 drops the passages whose argmax is
  [SEP] ("no answer"), the extractive mask allows a continuation of an n-gram of any live
  passage, the passages combine by ``sum(p^2) / (sum(p) + 1)`` and a beam of ``joint_topk``
  (the example's ``topk``, 1) keeps the best accumulated ``log(combined + 1e-6)``. The answer
  goes to every live passage whose text holds it (so the vote returns it); ``use_cache: false``
  re-runs the encoder over source + answer at every step, as the post's decoder does;

and per passage (then the vote below), with the generation machinery of
:mod:`bertlab.decoding.sampling` and a key/value cache (``use_cache``):

- ``greedy``: batched over the passages, each step the most probable allowed token;
- ``beam``: beam search of ``beam_size`` beams, finished answers ranked by their MEAN token
  log-probability (the [SEP] included).

``constrained: true`` (the post's ``mode='extractive'``): only tokens that continue the answer
as a run of the passage, and [SEP], keep their probability (:mod:`bertlab.decoding.substring`;
not renormalised). A passage's score is ``exp(mean token log-probability)`` of its answer (the
geometric mean of the chosen probabilities, in (0, 1] like the MLM reader's mean probability),
and the task combines the passages of a question with the MLM reader's vote
(``sum(v^2) / (sum(v) + 1)`` per distinct answer; empty answers do not vote). These two
are bertlab's per-passage variants, not the post's decoder (``joint``, the default of
``experiment=mrc_seq2seq``); the joint answer's score is the exp of its mean step score.
The joint decoder takes a question at a time (as the example's ``answer``), the per-passage
ones a whole evaluation batch of questions at once.

Evaluation, prediction and the optimiser are the MLM reader's (this class subclasses it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bertlab.data.mrc_datamodule import IGNORE
from bertlab.decoding.constrained import PassageAnswer, find_run
from bertlab.decoding.joint import joint_decode, mean_score
from bertlab.decoding.sampling import beam_search, sample
from bertlab.decoding.substring import PassageNgrams, constrain_logprobs
from bertlab.nn.unilm import unilm_attention_mask
from bertlab.tasks.mlm_reading_comprehension import MlmReadingComprehensionModule
from bertlab.utils.config import to_plain
from bertlab.utils.errors import ConfigError

DECODINGS = ("joint", "greedy", "beam")  # joint: the post's; greedy/beam: per passage, then the vote


class Seq2SeqReadingComprehensionModule(MlmReadingComprehensionModule):
    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        max_answer_len: int = 32,
        sep_id: int = 102,
        mask_id: int = 103,
        decoding: str = "greedy",
        beam_size: int = 4,
        constrained: bool = True,
        use_cache: bool = True,
        special_ids: Mapping[str, int] | None = None,
        vocab_keep_ids: list[int] | None = None,
        joint_topk: int = 1,
        source_order: str = "question_first",
    ):
        if decoding not in DECODINGS:
            raise ConfigError("model.decoding", f"must be one of {list(DECODINGS)}, got {decoding!r}")
        for key, value in (("beam_size", beam_size), ("joint_topk", joint_topk)):
            if int(value) < 1:
                raise ConfigError(f"model.{key}", f"must be >= 1, got {value}")
        if decoding == "joint" and source_order != "passage_first":
            raise ConfigError(
                "model.decoding",
                f"joint (the post's decoder) needs data.source_order: passage_first, got {source_order!r}",
            )
        super().__init__(encoder, optimizer, scheduler, max_answer_len, sep_id, mask_id, "constrained", vocab_keep_ids)
        self.save_hyperparameters(
            {
                "encoder": to_plain(encoder),
                "optimizer": to_plain(optimizer),
                "scheduler": to_plain(scheduler),
                "max_answer_len": max_answer_len,
                "sep_id": sep_id,
                "mask_id": mask_id,
                "decoding": decoding,
                "beam_size": int(beam_size),
                "constrained": bool(constrained),
                "use_cache": bool(use_cache),
                "special_ids": to_plain(special_ids),
                "vocab_keep_ids": to_plain(vocab_keep_ids),
                "joint_topk": int(joint_topk),
                "source_order": source_order,
            }
        )

    # ------------------------------------------------------------------ model
    def target_logits(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """(logits ``[N, V]`` at the N target positions, their labels ``[N]``)."""
        ids, valid, src = batch["input_ids"], batch["attention_mask"].bool(), batch["source_len"]
        pos = torch.arange(ids.size(1), device=ids.device)
        segments = ((pos[None, :] >= src[:, None]) & valid).long()
        hidden = self.encoder(
            input_ids=ids, attention_mask=unilm_attention_mask(valid, src), token_type_ids=segments
        ).last_hidden_state
        labels = batch["labels"]
        sel = labels != IGNORE  # shape: [B, T]
        return self.mlm_head(hidden[sel]), labels[sel]  # the head on the target positions only

    def loss(self, batch: Mapping[str, Any]) -> Tensor:
        logits, labels = self.target_logits(batch)
        return F.cross_entropy(logits.float(), labels)

    def mask_logits(self, input_ids, attention_mask):  # the MLM reader's slots do not exist here
        raise NotImplementedError("the seq2seq reader has no [MASK] slots: use target_logits / decode_batch")

    # ------------------------------------------------------------------ decoding
    def _step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Next-token log-probabilities ``[N, V]`` of rows ``tokens`` = padded source (P columns)
        + the answer so far; with the cache only the columns not seen yet are encoded."""
        rows, prompt = state["rows"], state["prompt_len"]
        src_len = state["source_len"][rows]
        n, t = tokens.shape
        seen = state["seen"] if state["use_cache"] else 0
        dev = tokens.device
        cols = torch.arange(seen, t, device=dev)
        key_valid = torch.cat([state["source_valid"][rows], torch.ones(n, t - prompt, dtype=torch.bool, device=dev)], 1)
        is_target = cols >= prompt
        # positions: the source's own, then the answer right after the row's real source
        positions = torch.where(is_target[None], src_len[:, None] + (cols - prompt)[None], cols[None].expand(n, -1))
        kwargs: dict[str, Any] = {}
        if state["use_cache"]:
            from transformers import DynamicCache

            kwargs["past_key_values"] = state["cache"] if state["cache"] is not None else DynamicCache()
        hidden = self.encoder(
            input_ids=tokens[:, seen:],
            attention_mask=unilm_attention_mask(key_valid, prompt, cols),
            token_type_ids=is_target[None].expand(n, -1).long(),
            position_ids=positions,
            **kwargs,
        ).last_hidden_state
        # the next token is predicted from the last real token: the source's last [SEP] at first
        last = (src_len - 1 - seen) if t == prompt else torch.full_like(src_len, t - 1 - seen)
        logp = self.mlm_head(hidden[torch.arange(n, device=dev), last]).float().log_softmax(-1)
        if state["constraints"] is not None:
            logp = constrain_logprobs(logp, tokens[:, prompt:], [state["constraints"][r] for r in rows.tolist()])
        new_state = dict(state, seen=t)
        if state["use_cache"]:
            new_state["cache"] = kwargs["past_key_values"]
        return logp, new_state

    @staticmethod
    def _select(state: dict[str, Any], index: Tensor) -> dict[str, Any]:
        if state.get("cache") is not None:
            state["cache"].reorder_cache(index)  # in place: the decoders never reuse the old state
        return dict(state, rows=state["rows"][index])

    @torch.no_grad()
    def decode_batch(
        self, batch: Mapping[str, Any], decoding: str | None = None, **options: Any
    ) -> list[PassageAnswer]:
        """One answer per row (passage) of an evaluation batch. ``options`` override
        ``beam_size``, ``joint_topk``, ``constrained`` and ``use_cache`` for this call."""
        hp = {"joint_topk": 1, "source_order": "question_first", **self.hparams, **options}
        decoding = decoding or hp["decoding"]
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {list(DECODINGS)}, got {decoding!r}")
        if decoding == "joint" and hp["source_order"] != "passage_first":
            raise ValueError(f"joint decoding needs a model trained passage first, this one is {hp['source_order']}")
        ids, valid = batch["input_ids"], batch["attention_mask"].bool()
        sep = self.hparams.sep_id
        passages = batch["passages"]
        src_len = batch.get("source_len")
        if src_len is None:
            src_len = valid.sum(1)
        max_pos = self.encoder.config.max_position_embeddings
        max_len = min(int(self.hparams.max_answer_len), max_pos - int(src_len.max()))
        if max_len < 1:
            raise ValueError(
                f"a source of {int(src_len.max())} tokens leaves no room for an answer ({max_pos} positions)"
            )
        if decoding == "joint":
            return self._decode_joint(batch, src_len, max_len, hp)
        constraints = [PassageNgrams(p, sep) for p in passages] if hp["constrained"] else None
        special = self.hparams.special_ids or {}
        banned = [] if hp["constrained"] else [special[k] for k in ("pad", "cls", "mask") if k in special]
        state = {
            "rows": torch.arange(ids.size(0), device=ids.device),
            "prompt_len": ids.size(1),
            "source_len": src_len.to(ids.device),
            "source_valid": valid,
            "constraints": constraints,
            "use_cache": bool(hp["use_cache"]),
            "cache": None,
            "seen": 0,
        }
        was_training = self.training
        self.eval()
        try:
            if decoding == "greedy":
                found = sample(
                    self._step,
                    ids,
                    strategy="greedy",
                    max_len=max_len,
                    eos_id=sep,
                    banned_ids=banned,
                    state=state,
                    select=self._select,
                    raw_scores=True,
                    return_logprobs=True,
                )
                scored = [(sum(lp) / len(lp), toks) for toks, lp in found]
            else:
                best = beam_search(
                    self._step,
                    ids,
                    beam_size=int(hp["beam_size"]),
                    max_len=max_len,
                    eos_id=sep,
                    banned_ids=banned,
                    state=state,
                    select=self._select,
                    length_normalize=True,
                    raw_scores=True,
                )
                scored = [b[0] if b else (-math.inf, []) for b in best]
        finally:
            self.train(was_training)
        answers = []
        for (mean_logp, toks), passage in zip(scored, passages):
            score = math.exp(mean_logp) if toks else 0.0
            answers.append(PassageAnswer(list(toks), [score], find_run(passage, toks)))
        return answers

    def _decode_joint(
        self, batch: Mapping[str, Any], src_len: Tensor, max_len: int, hp: Mapping[str, Any]
    ) -> list[PassageAnswer]:
        """Post 6's decoder (:func:`bertlab.decoding.joint.joint_decode`), one question at a time
        (the rows of equal ``batch["question"]``)."""
        question = batch.get("question")
        if question is None:
            raise ValueError("joint decoding needs the batch's 'question' (MrcSeq2SeqDataModule evaluation batches)")
        ids, valid, passages = batch["input_ids"], batch["attention_mask"].bool(), batch["passages"]
        answers = [PassageAnswer([], []) for _ in passages]
        q = question.tolist()
        starts = [i for i in range(len(q)) if i == 0 or q[i] != q[i - 1]] + [len(q)]
        was_training = self.training
        self.eval()
        try:
            for lo, hi in zip(starts, starts[1:]):
                rows = list(range(lo, hi))
                found = self._joint_question(
                    ids[lo:hi], valid[lo:hi], src_len[lo:hi], [passages[r] for r in rows], max_len, hp
                )
                if not found.tokens:
                    continue
                live = [lo + j for j in found.live]
                runs = {r: find_run(passages[r], found.tokens) for r in live}
                holders = [r for r in live if runs[r] >= 0] or live
                for r in holders:
                    answers[r] = PassageAnswer(list(found.tokens), [mean_score(found)], runs[r])
        finally:
            self.train(was_training)
        return answers

    def _joint_question(self, ids: Tensor, valid: Tensor, src_len: Tensor, passages, max_len: int, hp):
        """The joint answer of one question's rows, the model behind ``next_probs``: row (j, b) =
        live passage j's source + prefix b; with the cache, rows are reordered like the beam."""
        width = int(src_len.max())
        ids, valid = ids[:, :width], valid[:, :width]
        dev = ids.device
        mem: dict[str, Any] = {
            "state": {
                "rows": torch.arange(ids.size(0), device=dev),
                "prompt_len": width,
                "source_len": src_len.to(dev),
                "source_valid": valid,
                "constraints": None,
                "use_cache": bool(hp["use_cache"]),
                "cache": None,
                "seen": 0,
            },
            "live": list(range(ids.size(0))),
            "k": 1,
        }

        def next_probs(live: list[int], prefixes: list[list[int]], parents: list[int] | None) -> Tensor:
            state = mem["state"]
            if parents is not None:
                pos = {j: i for i, j in enumerate(mem["live"])}
                index = [pos[j] * mem["k"] + b for j in live for b in parents]
                state = self._select(state, torch.as_tensor(index, device=dev))
            n, t = len(live) * len(prefixes), len(prefixes[0])
            answer = torch.as_tensor([p for _ in live for p in prefixes], dtype=torch.long, device=dev)
            tokens = torch.cat([ids[state["rows"]], answer.reshape(n, t)], 1)
            logp, mem["state"] = self._step(tokens, state)
            mem["live"], mem["k"] = live, len(prefixes)
            return logp.exp().view(len(live), len(prefixes), -1)

        return joint_decode(
            next_probs,
            passages,
            self.hparams.sep_id,
            max_len,
            topk=int(hp["joint_topk"]),
            extractive=bool(hp["constrained"]),
        )
