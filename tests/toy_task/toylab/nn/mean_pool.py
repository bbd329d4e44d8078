"""The toy task's head (plain torch, step 2): the mean of the token vectors -> dropout -> Linear."""

from __future__ import annotations

import torch
from torch import nn


class MeanPoolHead(nn.Module):
    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden [B, T, H], mask [B, T] (1: a token) -> logits [B, num_labels]."""
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # shape: [B, T, 1]
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.out(self.dropout(mean))
