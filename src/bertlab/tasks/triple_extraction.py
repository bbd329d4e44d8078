"""Triple extraction with half-pointer-half-tagging (Su Jianlin, kexue.fm 7161; methods.md section 5).

    H_out = encoder(text)                        last hidden states
    subject  = sigmoid(Dense_2(H_out)) ** 2       [B, T, 2]: start / end
    H_obj    = the last block's residual sum BEFORE its final LayerNorm (object_input: pre_ln,
               the post's ``bert.model.layers[-2]``) or H_out (object_input: output)
    c        = concat(H_obj[s_start], H_obj[s_end])
    object   = sigmoid(Dense_{P*2}(CLN(H_obj, c))) ** 4     [B, T, P, 2]

The pre-LN tensor is captured by a forward PRE-hook on the last block's output LayerNorm
(BERT: ``encoder.layer[-1].output.LayerNorm``; ALBERT: the shared group's last
``full_layer_layer_norm``, whose last call is the last layer). The conditional LayerNorm
(:class:`~bertlab.nn.conditional_layer_norm.ConditionalLayerNorm`) is fresh (gamma 1, beta 0)
with zero-initialised, bias-free condition projections, so at init the object head sees
the plain LayerNorm of H_obj whatever the subject.

Loss (as the post): binary cross-entropy on the probabilities (clipped to [1e-7, 1-1e-7]
like Keras), subject: mean over start/end, object: mean over start/end and SUM over
predicates; both averaged over the unpadded tokens of the whole batch ([CLS]/[SEP]
included); total = subject + object.

Decoding (thresholds from config): subject starts with p > 0.6, each paired with the
nearest end >= start with p > 0.5; then, batched over all candidate subjects of the batch,
object (start, predicate) with p > 0.6 paired with the nearest end >= start of the same
predicate with p > 0.5. Only real character positions (not [CLS]/[SEP]/padding) are
candidates. Validation and test (also under DDP) run through
:class:`bertlab.tasks.evaluation.EvalCollector`: the DataModule maps token spans to character
offsets (``datamodule.decode``), :func:`score_triples` scores them (``metrics.triples``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bertlab.data.triples_datamodule import TriplesEvalData
from bertlab.metrics.triples import dictionary_baseline, triple_diff, triple_scores
from bertlab.nn.conditional_layer_norm import ConditionalLayerNorm
from bertlab.tasks.base import BertlabTask
from bertlab.tasks.evaluation import EvalCollector, triple_cell
from bertlab.utils.config import to_plain
from bertlab.utils.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = {"subject_start": 0.6, "subject_end": 0.5, "object_start": 0.6, "object_end": 0.5}
BCE_EPS = 1e-7


# ---------------------------------------------------------------------------- pieces
def find_output_layer_norm(encoder: nn.Module) -> nn.LayerNorm:
    """The final LayerNorm of the encoder's last block (BERT/RoBERTa or ALBERT)."""
    enc = getattr(encoder, "encoder", None)
    layers = getattr(enc, "layer", None)
    if layers is not None and len(layers) and hasattr(layers[-1], "output"):
        return layers[-1].output.LayerNorm
    groups = getattr(enc, "albert_layer_groups", None)
    if groups is not None:
        return groups[-1].albert_layers[-1].full_layer_layer_norm
    raise ConfigError(
        "model.object_input",
        f"cannot find the last block's output LayerNorm of a {type(encoder).__name__}; use 'output'",
    )


class PreLayerNormCapture:
    """Keeps the input of ``ln`` at its latest call (a forward pre-hook)."""

    def __init__(self, ln: nn.Module):
        self.value: Tensor | None = None
        self.handle = ln.register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.value = args[0]

    def pop(self) -> Tensor:
        if self.value is None:
            raise RuntimeError("the pre-LayerNorm hook captured nothing (was the encoder run?)")
        value, self.value = self.value, None
        return value


def binary_cross_entropy(probs: Tensor, labels: Tensor) -> Tensor:
    """Elementwise Keras-style BCE on probabilities (clipped to [1e-7, 1 - 1e-7])."""
    p = probs.clamp(BCE_EPS, 1 - BCE_EPS)
    return -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p))


def triple_loss(
    subject_probs: Tensor, object_probs: Tensor, subject_labels: Tensor, object_labels: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """(subject loss, object loss). Shapes: subject [B, T, 2], object [B, T, P, 2], mask [B, T]."""
    m = mask.to(subject_probs.dtype)
    denom = m.sum().clamp_min(1)
    sub = binary_cross_entropy(subject_probs, subject_labels).mean(-1)  # [B, T]
    obj = binary_cross_entropy(object_probs, object_labels).mean(-1).sum(-1)  # [B, T]
    return (sub * m).sum() / denom, (obj * m).sum() / denom


def decode_subjects(
    start_p: np.ndarray, end_p: np.ndarray, lo: int, hi: int, t_start: float = 0.6, t_end: float = 0.5
) -> list[tuple[int, int]]:
    """Positions in [lo, hi): every start with p > t_start paired with the nearest end >=
    start with p > t_end (starts without an end are dropped)."""
    starts = [i for i in range(lo, hi) if start_p[i] > t_start]
    ends = [j for j in range(lo, hi) if end_p[j] > t_end]
    out = []
    for i in starts:
        j = next((j for j in ends if j >= i), None)
        if j is not None:
            out.append((i, j))
    return out


def decode_objects(
    probs: np.ndarray, lo: int, hi: int, t_start: float = 0.6, t_end: float = 0.5
) -> list[tuple[int, int, int]]:
    """``probs`` [T, P, 2]: (o_start, o_end, predicate) for every (start, predicate) with
    p > t_start in [lo, hi) and the nearest end >= start of the SAME predicate, p > t_end.
    Ordered by start position, then predicate."""
    starts = np.argwhere(probs[lo:hi, :, 0] > t_start)
    if len(starts) == 0:
        return []
    end_mask = probs[lo:hi, :, 1] > t_end
    out = []
    for i, p in starts:  # argwhere: row-major order = (position, predicate)
        js = np.flatnonzero(end_mask[i:, p])
        if len(js):
            out.append((int(lo + i), int(lo + i + js[0]), int(p)))
    return out


# ---------------------------------------------------------------------------- module
class TripleExtractionModule(EvalCollector, BertlabTask):
    monitor = "val/f1"

    def __init__(
        self,
        encoder: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        num_predicates: int = 49,
        object_input: str = "pre_ln",
        cln_hidden_units: int | None = None,
        cln_act: str | None = None,
        subject_power: float = 2.0,
        object_power: float = 4.0,
        thresholds: Mapping[str, float] | None = None,
        max_subject_batch: int = 256,
        vocab_keep_ids: list[int] | None = None,
    ):
        thresholds = to_plain(thresholds)
        if object_input not in ("pre_ln", "output"):
            raise ConfigError("model.object_input", f"must be 'pre_ln' or 'output', got {object_input!r}")
        th = dict(DEFAULT_THRESHOLDS)
        unknown = set(thresholds or {}) - set(th)
        if unknown:
            raise ConfigError(f"model.thresholds.{sorted(unknown)[0]}", f"unknown threshold; known: {sorted(th)}")
        th.update(thresholds or {})
        super().__init__(
            encoder=encoder,
            optimizer=optimizer,
            scheduler=scheduler,
            num_predicates=num_predicates,
            object_input=object_input,
            cln_hidden_units=cln_hidden_units,
            cln_act=cln_act,
            subject_power=subject_power,
            object_power=object_power,
            thresholds=th,
            max_subject_batch=max_subject_batch,
            vocab_keep_ids=vocab_keep_ids,
        )
        self.encoder, _ = self.build_encoder()
        hidden = self.encoder.config.hidden_size
        std = getattr(self.encoder.config, "initializer_range", 0.02)
        self.num_predicates = num_predicates
        self.subject_head = nn.Linear(hidden, 2)
        self.object_cln = ConditionalLayerNorm(hidden, 2 * hidden, cln_hidden_units, cln_act, eps=1e-12)
        self.object_head = nn.Linear(hidden, num_predicates * 2)
        for lin in (self.subject_head, self.object_head):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)
        self._baselines: dict[str, dict[str, Any]] = {}  # split -> dictionary-baseline scores (fixed by the data)
        self._capture = PreLayerNormCapture(find_output_layer_norm(self.encoder)) if object_input == "pre_ln" else None

    # ------------------------------------------------------------------ forward pieces
    def encode(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """(H_out [B, T, H], H_obj [B, T, H]: the object head's input)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        obj = self._capture.pop() if self._capture is not None else out
        return out, obj

    def subject_probs(self, hidden: Tensor) -> Tensor:
        return torch.sigmoid(self.subject_head(hidden).float()) ** self.hparams.subject_power  # [B, T, 2], fp32

    def object_probs(self, obj_hidden: Tensor, subject_ids: Tensor) -> Tensor:
        """obj_hidden [N, T, H], subject_ids [N, 2] (start, end) -> [N, T, P, 2]."""
        rows = torch.arange(obj_hidden.size(0), device=obj_hidden.device)
        cond = torch.cat([obj_hidden[rows, subject_ids[:, 0]], obj_hidden[rows, subject_ids[:, 1]]], dim=-1)
        h = self.object_cln(obj_hidden, cond)
        probs = torch.sigmoid(self.object_head(h).float()) ** self.hparams.object_power  # fp32 under autocast
        return probs.view(*probs.shape[:2], self.num_predicates, 2)

    def losses(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        out, obj = self.encode(batch["input_ids"], batch["attention_mask"])
        sub_p = self.subject_probs(out)
        obj_p = self.object_probs(obj, batch["subject_ids"])
        return triple_loss(sub_p, obj_p, batch["subject_labels"], batch["object_labels"], batch["attention_mask"])

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        sub, obj = self.losses(batch)
        loss = sub + obj
        bs = batch["input_ids"].size(0)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({"train/subject_loss": sub, "train/object_loss": obj}, batch_size=bs)
        return loss

    # ------------------------------------------------------------------ extraction
    @torch.no_grad()
    def extract(self, batch: Mapping[str, Tensor]) -> dict[int, list[tuple[int, int, int, int, int]]]:
        """Feature index -> triples as token positions (s_start, s_end, predicate, o_start, o_end)."""
        th = self.hparams.thresholds
        mask = batch["attention_mask"]
        out, obj = self.encode(batch["input_ids"], mask)
        sub_p = self.subject_probs(out).float().cpu().numpy()
        lengths = mask.sum(1).tolist()
        index = batch["index"].tolist()
        cands: list[tuple[int, int, int]] = []
        for b, n in enumerate(lengths):
            for s0, s1 in decode_subjects(
                sub_p[b, :, 0], sub_p[b, :, 1], 1, n - 1, th["subject_start"], th["subject_end"]
            ):
                cands.append((b, s0, s1))
        result: dict[int, list[tuple[int, int, int, int, int]]] = {i: [] for i in index}
        step = max(1, int(self.hparams.max_subject_batch))
        for c0 in range(0, len(cands), step):
            chunk = cands[c0 : c0 + step]
            rows = torch.as_tensor([b for b, _, _ in chunk], device=obj.device)
            subj = torch.as_tensor([[s0, s1] for _, s0, s1 in chunk], device=obj.device)
            probs = self.object_probs(obj[rows], subj).float().cpu().numpy()
            for k, (b, s0, s1) in enumerate(chunk):
                for o0, o1, p in decode_objects(probs[k], 1, lengths[b] - 1, th["object_start"], th["object_end"]):
                    result[index[b]].append((s0, s1, p, o0, o1))
        return result

    # ------------------------------------------------------------------ evaluation
    def eval_predictions(self, batch: Mapping[str, Tensor]) -> dict[int, list[tuple[int, int, int, int, int]]]:
        """Validation/test through :class:`EvalCollector`: :meth:`extract`."""
        return self.extract(batch)

    def eval_extra_metrics(self, split, predictions, step_seconds, wall_seconds) -> dict[str, Any]:
        return {"texts_per_s": len(predictions) / wall_seconds if wall_seconds > 0 else 0.0}

    def eval_table(self, split: str, outputs: list[dict[str, Any]]):
        rows = []
        for rec, out in zip(self.eval_data(split, TriplesEvalData).records, outputs):
            exact = not out["new"] and not out["lack"]
            rows.append([rec.text, triple_cell(rec.spo_list), triple_cell(out["spo_list_pred"]), exact])
        return ["text", "gold", "pred", "exact"], rows

    def predict_step(self, batch, batch_idx=0):
        return self.extract(batch)

    def eval_score(self, split: str, predictions: Mapping[int, Any]) -> tuple[dict[str, Any], list[Any]]:
        return score_triples(self.eval_data(split, TriplesEvalData), predictions, self._baselines)


# ---------------------------------------------------------------------------- scoring
def score_triples(
    data: TriplesEvalData, predictions: Mapping[int, Sequence[Any]], baselines: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics, outputs) of a triples split from token-span predictions ``{record index:
    [(s0, s1, p, o0, o1), ...]}``. The DataModule decodes them into character-offset triples,
    :func:`triple_scores` scores them against ALL gold triples of each record (the unlocatable
    ones are counted in ``n_gold_not_found`` / ``n_gold_beyond_max_len``); the test split also
    gets the dictionary baseline's P/R/F1 (computed once per split into ``baselines``). One
    output per record: ``spo_list_pred`` and its errors ``new`` / ``lack`` (:func:`triple_diff`)."""
    split, recs = data.split, data.records
    missing = len(recs) - len(predictions)
    if missing:
        log.warning("%s: %d of %d records have no prediction (a limited eval run?)", split, missing, len(recs))
    decoded = data.decode(predictions)
    pred = [[(t["subject"], t["predicate"], t["object"]) for t in d] for d in decoded]
    metrics = triple_scores(pred, [r.spo_list for r in recs])
    metrics["n_gold_not_found"] = data.n_gold_not_found
    metrics["n_gold_beyond_max_len"] = data.n_gold_beyond_max_len
    metrics["evaluated_on"] = data.evaluated_on
    if split == "test" and data.baseline:
        baselines = {} if baselines is None else baselines
        if split not in baselines:
            base_pred = dictionary_baseline(data.train_spo, [r.text for r in recs])
            baselines[split] = triple_scores(base_pred, [r.spo_list for r in recs])
        metrics.update({f"baseline_{k}": baselines[split][k] for k in ("precision", "recall", "f1")})
    outputs = [{"spo_list_pred": d, **triple_diff(d, r.spo_list)} for d, r in zip(decoded, recs)]
    return metrics, outputs


__all__: Sequence[str] = (
    "TripleExtractionModule",
    "score_triples",
    "decode_subjects",
    "decode_objects",
    "triple_loss",
    "binary_cross_entropy",
    "find_output_layer_norm",
    "PreLayerNormCapture",
)
