"""Dynamic padding: a batch is padded to its own longest sequence, never to maxlen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def pad_collate(
    features: Sequence[dict[str, Any]], pad_id: int = 0, label_pad: int = 0, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """features: dicts with ``input_ids`` (list[int]), optional ``labels`` (list[int]) and ``index`` (int).
    Pads to the longest feature of the batch, or to at least ``pad_to`` (fixed padding)."""
    longest = max(max(len(f["input_ids"]) for f in features), pad_to or 0)
    batch = len(features)
    input_ids = torch.full((batch, longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, longest), dtype=torch.bool)
    has_labels = "labels" in features[0]
    labels = torch.full((batch, longest), label_pad, dtype=torch.long) if has_labels else None
    for i, f in enumerate(features):
        n = len(f["input_ids"])
        input_ids[i, :n] = torch.as_tensor(f["input_ids"], dtype=torch.long)
        attention_mask[i, :n] = True
        if labels is not None:
            labels[i, :n] = torch.as_tensor(f["labels"], dtype=torch.long)
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        out["labels"] = labels
    if "index" in features[0]:
        out["index"] = torch.as_tensor([f["index"] for f in features], dtype=torch.long)
    return out
