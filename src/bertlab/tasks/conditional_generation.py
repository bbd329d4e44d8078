"""Sentiment-conditioned language model (post 7124): a BERT-family encoder run left to right
(causal attention mask), its MLM head as the LM head, and a label embedding
(``Embedding(num_labels, cond_dim)``, 128 by default) as the condition of EVERY LayerNorm
(embedding norm, both norms of every block, the head's norm; :mod:`bertlab.nn.conditioning`).
``conditional: false`` trains the same LM without the condition (the baseline whose
control accuracy is the base rate).

Loss: next-token cross-entropy, mean over the real (non-padding) target tokens; the head
runs only at those positions. Validation/test: perplexity per label on the held-out split;
then ``generation.num_samples`` texts per label (``generation.val_num_samples`` at
validation; 0 = none) with the configured strategy, scored by distinct-1/2, the copy rate
(samples sharing >= 20 characters with a training text) and, when
``control_classifier_ckpt`` names a classification checkpoint, control accuracy; the
samples go to ``samples_<split>.md`` in the run folder and, through
:func:`bertlab.utils.logging_tables.log_table`, to every logger under ``<split>/samples``
(a W&B table, TensorBoard text, a CSV file under the CSV logger's ``tables/``).

Generation (:meth:`ConditionalGenerationModule.generate_ids`) uses a key/value cache by
default, so each new token runs the encoder at one position and the LM head once per row.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertlab.data.generation_datamodule import IGNORE, GenerationEvalData
from bertlab.decoding.sampling import generate as decode
from bertlab.metrics.generation import PerplexityMeter, control_accuracy, copy_rate, distinct_n
from bertlab.nn.conditioning import causal_attention_mask, condition_layer_norms
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalSharding
from bertlab.utils.config import to_plain
from bertlab.utils.distributed import rank_and_world, sum_dicts_across_ranks
from bertlab.utils.errors import CheckpointError
from bertlab.utils.logging_tables import log_table

log = logging.getLogger(__name__)

DEFAULT_GENERATION = {
    "num_samples": 50,
    "val_num_samples": 10,
    "strategy": "topk",
    "k": 5,
    "p": 0.9,
    "temperature": 1.0,
    "beam_size": 4,
    "max_len": 126,
    "seed": 0,
    "use_cache": True,
    "copy_min_chars": 20,
}


class ConditionalGenerationModule(EvalSharding, BertlabTask):
    monitor = "val/ppl"
    monitor_mode = "min"

    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        conditional: bool = True,
        num_labels: int = 2,
        cond_dim: int = 128,
        cln_hidden_units: int | None = None,
        cln_act: str | None = None,
        cond_init_std: float | None = None,
        label_names: Sequence[str] | None = None,
        special_ids: Mapping[str, int] | None = None,
        vocab_keep_ids: list[int] | None = None,
        generation: Mapping[str, Any] | None = None,
        control_classifier_ckpt: str | None = None,
    ):
        generation = {**DEFAULT_GENERATION, **(to_plain(generation) or {})}
        label_names = list(to_plain(label_names) or [str(i) for i in range(num_labels)])
        super().__init__(
            encoder=encoder,
            optimizer=optimizer,
            scheduler=scheduler,
            conditional=conditional,
            num_labels=num_labels,
            cond_dim=cond_dim,
            cln_hidden_units=cln_hidden_units,
            cln_act=cln_act,
            cond_init_std=cond_init_std,
            label_names=label_names,
            special_ids=special_ids,
            vocab_keep_ids=vocab_keep_ids,
            generation=generation,
            control_classifier_ckpt=control_classifier_ckpt,
        )
        self.encoder, self.lm_head = self.build_encoder(with_mlm_head=True)
        self.label_embedding = nn.Embedding(num_labels, cond_dim)
        # drawn like the encoder's own weights (BERT: normal, std initializer_range = 0.02), not
        # nn.Embedding's std 1: with Adam each of the cond_dim weights of a zero-initialised W_g / W_b
        # moves by ~lr a step, so the LN's gamma/beta shift moves by ~lr * ||c||_1 a step, ~0.1 at
        # std 1 (cond_dim 128, lr 1e-3): measured, that model trailed the unconditional baseline in
        # perplexity at every validation (docs/results.md, generation)
        std = cond_init_std if cond_init_std is not None else getattr(self.encoder.config, "initializer_range", 0.02)
        nn.init.normal_(self.label_embedding.weight, std=float(std))
        self.cond_ctx = None
        if conditional:
            self.cond_ctx = condition_layer_norms([self.encoder, self.lm_head], cond_dim, cln_hidden_units, cln_act)
        self._meters: dict[str, PerplexityMeter] = {}
        self._classifier: Callable[[list[str]], Sequence[int]] | None = None

    # ------------------------------------------------------------------ model
    def condition(self, labels: Tensor):
        """Context in which the encoder and head run for rows with these labels ``[B]``."""
        if self.cond_ctx is None:
            return contextlib.nullcontext()
        return self.cond_ctx.use(self.label_embedding(labels))

    def target_logits(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(logits ``[N, V]`` at the N real target positions, their targets ``[N]``)."""
        targets = batch["targets"]
        sel = targets != IGNORE  # shape: [B, T]
        labels = batch["cond_labels"]
        with self.condition(labels):
            hidden = self.encoder(
                input_ids=batch["input_ids"], attention_mask=causal_attention_mask(batch["attention_mask"])
            ).last_hidden_state
        # the head only where there is a target; each of those N rows keeps its text's condition
        with self.condition(labels[sel.nonzero()[:, 0]]):
            logits = self.lm_head(hidden[sel])
        return logits, targets[sel]

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        logits, targets = self.target_logits(batch)
        loss = F.cross_entropy(logits.float(), targets)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, split: str, batch: Mapping[str, Tensor]) -> None:
        logits, targets = self.target_logits(batch)
        nll = F.cross_entropy(logits.float(), targets, reduction="none")
        rows = batch["cond_labels"][:, None].expand_as(batch["targets"])[batch["targets"] != IGNORE]
        meter = self._meters.setdefault(split, PerplexityMeter())
        for lab in rows.unique().tolist():
            m = rows == lab
            meter.update(int(lab), float(nll[m].sum()), int(m.sum()))

    def _eval_end(self, split: str) -> None:
        meter = self._meters.pop(split, None) or PerplexityMeter()
        if rank_and_world()[1] > 1:  # DDP: each rank scored its share of the batches; add the sums
            meter.nll, meter.count = sum_dicts_across_ranks(meter.nll), sum_dicts_across_ranks(meter.count)
        metrics: dict[str, Any] = {}
        if meter.count:
            names = self.hparams.label_names
            for key, value in meter.compute().items():
                metrics["ppl" if key == "all" else f"ppl_{names[key]}"] = value
            metrics["n_tokens"] = sum(meter.count.values())
        n = self.hparams.generation["num_samples" if split == "test" else "val_num_samples"]
        samples: list[dict[str, Any]] = []
        if n and n > 0 and not self.trainer.sanity_checking:
            samples = self.sample_texts(n)
            metrics.update(self.sample_metrics(samples))
            self._write_samples(split, samples)
        self.last_metrics[split] = metrics
        self.last_outputs[split] = samples
        scalars = {f"{split}/{k}": float(v) for k, v in metrics.items() if isinstance(v, float) and not math.isnan(v)}
        ppl = scalars.pop(f"{split}/ppl", None)
        if scalars:
            self.log_dict(scalars)
        if ppl is not None:
            self.log(f"{split}/ppl", ppl, prog_bar=True)

    def on_fit_start(self) -> None:
        # a wrong model.control_classifier_ckpt fails now, not at the first validation with samples
        if self.hparams.control_classifier_ckpt:
            self.control_classifier()

    def on_validation_epoch_start(self) -> None:
        self._meters["val"] = PerplexityMeter()
        self.start_eval_shard(self.trainer.val_dataloaders)

    def validation_step(self, batch, batch_idx):
        if self.owns_eval_batch(batch_idx):
            self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._meters["test"] = PerplexityMeter()
        self.start_eval_shard(self.trainer.test_dataloaders)

    def test_step(self, batch, batch_idx):
        if self.owns_eval_batch(batch_idx):
            self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # ------------------------------------------------------------------ generation
    def _generation_data(self) -> GenerationEvalData:
        if self._trainer is None or getattr(self.trainer, "datamodule", None) is None:
            raise RuntimeError("sample_texts needs a datamodule (to decode tokens)")
        return self.eval_data("val", GenerationEvalData)

    def sample_texts(self, n: int, **overrides: Any) -> list[dict[str, Any]]:
        """``n`` generated texts per label: ``[{"label", "label_name", "text"}]``."""
        data = self._generation_data()
        cfg = {**self.hparams.generation, **overrides}
        labels = [lab for lab in range(self.hparams.num_labels) for _ in range(n)]
        ids = self.generate_ids(
            labels,
            **{k: cfg[k] for k in ("strategy", "k", "p", "temperature", "beam_size", "max_len", "seed", "use_cache")},
        )
        names = self.hparams.label_names
        return [{"label": lab, "label_name": names[lab], "text": data.decode_ids(t)} for lab, t in zip(labels, ids)]

    def sample_metrics(self, samples: list[dict[str, Any]]) -> dict[str, float]:
        texts = [s["text"] for s in samples]
        out = {
            "distinct_1": distinct_n(texts, 1),
            "distinct_2": distinct_n(texts, 2),
            "sample_chars": sum(map(len, texts)) / max(1, len(texts)),
        }
        for lab, name in enumerate(self.hparams.label_names):
            sub = [s["text"] for s in samples if s["label"] == lab]
            out[f"distinct_1_{name}"] = distinct_n(sub, 1)
            out[f"distinct_2_{name}"] = distinct_n(sub, 2)
        train_texts = self._generation_data().train_texts
        if train_texts:
            out["copy_rate"] = copy_rate(texts, train_texts, int(self.hparams.generation["copy_min_chars"]))
        classifier = self.control_classifier()
        if classifier is not None:
            out["control_acc"] = control_accuracy(texts, [s["label"] for s in samples], classifier)
        return out

    def control_classifier(self) -> Callable[[list[str]], Sequence[int]] | None:
        if self._classifier is None and self.hparams.control_classifier_ckpt:
            self._classifier = load_control_classifier(self.hparams.control_classifier_ckpt, self.hparams.label_names)
        return self._classifier

    def set_control_classifier(self, classifier: Callable[[list[str]], Sequence[int]] | None) -> None:
        """Use any callable ``texts -> labels`` as the control-accuracy judge."""
        self._classifier = classifier

    def _write_samples(self, split: str, samples: list[dict[str, Any]]) -> None:
        md = samples_markdown(samples, title=f"{split} samples, step {self.global_step}")
        if self._trainer is not None and self.trainer.is_global_zero:
            root = self.trainer.default_root_dir
            if root:
                os.makedirs(root, exist_ok=True)
                with open(os.path.join(root, f"samples_{split}.md"), "w", encoding="utf-8") as f:
                    f.write(md)
            # W&B: a wandb.Table; TensorBoard: markdown text; CSV: <log dir>/tables/<split>_samples-step*.csv
            log_table(
                self.trainer,
                f"{split}/samples",
                ["label", "text"],
                [[s["label_name"], s["text"]] for s in samples],
                step=self.global_step,
            )

    @torch.no_grad()
    def generate_ids(
        self,
        labels: Sequence[int],
        strategy: str = "topk",
        k: int = 5,
        p: float = 0.9,
        temperature: float = 1.0,
        beam_size: int = 4,
        max_len: int = 126,
        seed: int | None = 0,
        use_cache: bool = True,
        stop_at_sep: bool = True,
    ) -> list[list[int]]:
        """Token ids (no [CLS]/[SEP]) of one text per entry of ``labels``, each started from
        [CLS]; never [PAD]/[UNK]/[CLS]/[MASK]; stops at [SEP] or ``max_len`` tokens.
        ``stop_at_sep=False`` bans [SEP] too, so every text has exactly ``max_len`` tokens
        (fixed work for benchmarks, scripts/bench_generate.py)."""
        special = self.hparams.special_ids
        if not special:
            raise ValueError("this model has no special token ids (train it through bertlab.train)")
        for lab in labels:
            if not 0 <= int(lab) < self.hparams.num_labels:
                raise ValueError(f"unknown label {lab!r}: use 0..{self.hparams.num_labels - 1}")
        max_pos = self.encoder.config.max_position_embeddings
        max_len = min(int(max_len), max_pos - 1)
        was_training = self.training
        self.eval()
        device = self.label_embedding.weight.device
        lab = torch.as_tensor([int(x) for x in labels], dtype=torch.long, device=device)
        prompt = torch.full((len(lab), 1), special["cls"], dtype=torch.long, device=device)
        banned = [special[k_] for k_ in ("pad", "unk", "cls", "mask") if k_ in special]
        eos = special["sep"]
        if not stop_at_sep:
            banned, eos = banned + [eos], -1  # no id is -1: nothing ends a text early
        state = {"labels": lab, "cache": None, "seen": 0}
        try:
            out = decode(
                self._step_cached if use_cache else self._step_full,
                prompt,
                strategy=strategy,
                k=k,
                p=p,
                temperature=temperature,
                beam_size=beam_size,
                max_len=max_len,
                eos_id=eos,
                banned_ids=banned,
                seed=seed,
                state=state,
                select=_select_state,
            )
        finally:
            self.train(was_training)
        return out

    def _step_full(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """No cache: re-encode the prefix, run the head at the last position only."""
        mask = causal_attention_mask(torch.ones_like(tokens))
        with self.condition(state["labels"]):
            hidden = self.encoder(input_ids=tokens, attention_mask=mask).last_hidden_state
            return self.lm_head(hidden[:, -1]), state

    def _step_cached(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Key/value cache: encode only the tokens not seen yet (one per step)."""
        from transformers import DynamicCache

        cache = state["cache"] if state["cache"] is not None else DynamicCache()
        seen = state["seen"]
        new = tokens[:, seen:]
        q, kv = new.size(1), tokens.size(1)
        allowed = torch.ones(q, kv, dtype=torch.bool, device=tokens.device).tril(diagonal=seen)
        mask = torch.zeros(q, kv, device=tokens.device).masked_fill(~allowed, torch.finfo(torch.float32).min)
        with self.condition(state["labels"]):
            hidden = self.encoder(
                input_ids=new, attention_mask=mask[None, None].expand(new.size(0), 1, q, kv), past_key_values=cache
            ).last_hidden_state
            logits = self.lm_head(hidden[:, -1])
        return logits, {"labels": state["labels"], "cache": cache, "seen": kv}


def _select_state(state: dict[str, Any], index: Tensor) -> dict[str, Any]:
    cache = state["cache"]
    if cache is not None:
        cache.reorder_cache(index)  # in place: the decoders never reuse the old state
    return {"labels": state["labels"][index], "cache": cache, "seen": state["seen"]}


def samples_markdown(samples: Sequence[Mapping[str, Any]], title: str = "samples") -> str:
    """A markdown table ``| label | # | text |`` of the samples."""
    lines = [f"# {title}", "", "| label | # | text |", "|---|---|---|"]
    counts: dict[str, int] = {}
    for s in samples:
        name = str(s["label_name"])
        counts[name] = counts.get(name, 0) + 1
        text = str(s["text"]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {counts[name]} | {text} |")
    return "\n".join(lines) + "\n"


def labels_from_records(records: Sequence[Mapping[str, Any]], label_names: Sequence[str]) -> list[int]:
    """Label ids from prediction records of a classification model (``bertlab.predict``'s
    output): a ``label_id`` field, or a ``label`` that is an id or one of ``label_names``."""
    out = []
    for rec in records:
        value = rec.get("label_id", rec.get("label"))
        if isinstance(value, str) and value in label_names:
            value = list(label_names).index(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise CheckpointError(
                f"the control classifier's prediction {dict(rec)!r} has no label id or known label name "
                f"({list(label_names)})"
            )
        out.append(value)
    return out


def load_control_classifier(ckpt_path: str, label_names: Sequence[str]) -> Callable[[list[str]], list[int]]:
    """A ``texts -> labels`` callable from a sentence-classification checkpoint written by
    bertlab.train (rebuilt and run with bertlab.runs.load_run / predict_texts)."""
    from bertlab.runs import load_run, predict_texts

    try:
        model, datamodule, cfg = load_run(ckpt_path)
    except CheckpointError as err:
        raise CheckpointError(f"model.control_classifier_ckpt: {err}") from err
    if "classification" not in str(cfg.model._target_):
        raise CheckpointError(
            f"control_classifier_ckpt: {ckpt_path} is a {cfg.model._target_.rsplit('.', 1)[-1]} "
            "checkpoint, not a classification one"
        )

    def classify(texts: list[str]) -> list[int]:
        if not texts:
            return []
        records = predict_texts(model, datamodule, texts)
        return labels_from_records(records, label_names)

    return classify
