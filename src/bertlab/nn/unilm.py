"""The UniLM seq2seq attention mask (Dong et al. 2019; post 6's seq2seq reader).

A row is a source (here ``[CLS] question [SEP] passage [SEP]``) followed by a target (the
answer). Source positions attend to every source position (bidirectional) and never to the
target; target positions attend to the whole source and to the target positions up to and
including themselves (causal). Padding is attended by nobody.

``unilm_attention_mask(key_valid, source_end, query_pos)`` is the 4-D additive mask HF's
BertModel / AlbertModel take as ``attention_mask``: ``[B, 1, Q, K]``, 0 where allowed and the
dtype's minimum elsewhere. Query q (absolute index ``query_pos[q]`` in the key sequence) may
see key j iff ``key_valid[b, j]`` and (``j < source_end[b]`` or ``j <= query_pos[q]``).
Training passes every position as a query (``query_pos = arange(T)``); cached decoding
passes only the new positions.
"""

from __future__ import annotations

import torch
from torch import Tensor


def unilm_allowed(key_valid: Tensor, source_end: Tensor, query_pos: Tensor | None = None) -> Tensor:
    """Boolean ``[B, Q, K]``: may query q of row b attend to key j (see module doc).
    key_valid ``[B, K]`` (bool), source_end ``[B]`` (or a scalar), query_pos ``[Q]``
    (default: every key position)."""
    b, k = key_valid.shape
    keys = torch.arange(k, device=key_valid.device)
    if query_pos is None:
        query_pos = keys
    source_end = torch.as_tensor(source_end, device=key_valid.device).reshape(-1, 1, 1).expand(b, 1, 1)
    in_source = keys[None, None, :] < source_end  # shape: [B, 1, K]
    causal = keys[None, None, :] <= query_pos[None, :, None]  # shape: [1, Q, K]
    return key_valid.bool()[:, None, :] & (in_source | causal)


def unilm_attention_mask(
    key_valid: Tensor, source_end: Tensor, query_pos: Tensor | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Additive ``[B, 1, Q, K]`` mask for HF BERT-family encoders (see module doc)."""
    allowed = unilm_allowed(key_valid, source_end, query_pos)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
