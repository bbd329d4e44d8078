"""Reading comprehension by MLM: the encoder's MLM head fills M [MASK] slots with the answer.

Thin: the encoder and its MLM head come from :func:`bertlab.nn.encoders.build_encoder`
(``with_mlm_head=True``: a loaded checkpoint keeps its trained head), the vocab may be
trimmed (``vocab_keep_ids``), the head runs ONLY on the M mask positions (sliced out of the
hidden states before the head, never all positions), and decoding lives in
:mod:`bertlab.decoding.constrained`. The DataModule votes across passages and scores;
validation/test (also under DDP) run through :class:`bertlab.tasks.evaluation.EvalCollector`.

``decoding``:
- ``constrained`` (the post): all M slots from one forward pass, passage n-gram constraint;
- ``argmax``: the same forward pass, plain argmax per slot (ablation);
- ``autoregressive``: the speed baseline, one forward pass per slot (slot k is filled,
  with the same constraint, before slot k+1 is predicted), batched like the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from bertlab.decoding.constrained import PassageAnswer, PrefixConstraint, decode_batch
from bertlab.nn.encoders import build_encoder
from bertlab.optim import configure_optimizers
from bertlab.tasks.evaluation import EvalCollector
from bertlab.utils.config import to_plain
from bertlab.utils.errors import ConfigError

DECODINGS = ("constrained", "argmax", "autoregressive")


class MlmReadingComprehensionModule(EvalCollector, pl.LightningModule):
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
        super().__init__()
        if decoding not in DECODINGS:
            raise ConfigError("model.decoding", f"must be one of {list(DECODINGS)}, got {decoding!r}")
        encoder, optimizer, scheduler, vocab_keep_ids = (
            to_plain(x) for x in (encoder, optimizer, scheduler, vocab_keep_ids)
        )
        self.save_hyperparameters(
            {
                "encoder": encoder,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "max_answer_len": max_answer_len,
                "sep_id": sep_id,
                "mask_id": mask_id,
                "decoding": decoding,
                "vocab_keep_ids": vocab_keep_ids,
            }
        )
        self.encoder, self.mlm_head = build_encoder(encoder, with_mlm_head=True, keep_ids=vocab_keep_ids)
        self.last_outputs: dict[str, list[Any]] = {}
        self.last_metrics: dict[str, dict[str, Any]] = {}

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
    eval_prog_bar = "final"
    eval_hidden_prefixes = ("oracle_", "baseline_")

    def eval_predictions(self, batch: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
        """Feature (passage) index -> its answer (validation/test through :class:`EvalCollector`)."""
        return self._predict(batch)

    def eval_extra_metrics(self, split, predictions, step_seconds, wall_seconds) -> dict[str, Any]:
        refs = self.trainer.datamodule.refs[split]
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

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        return configure_optimizers(self)
