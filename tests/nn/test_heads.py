"""The naive pytorch-crf head (head.type=torchcrf) against bertlab's CRF: same NLL, same paths,
same forced first/last tags, registered under the CRF's name."""

from __future__ import annotations

import pytest
import torch

from bertlab.nn.crf import CRF
from bertlab.nn.heads import TorchCrfHead, build_tagging_head

pytest.importorskip("torchcrf")


def _pair(K: int, seed: int) -> tuple[CRF, TorchCrfHead]:
    torch.manual_seed(seed)
    ours, naive = CRF(K), TorchCrfHead(K)
    with torch.no_grad():
        naive.transitions.copy_(ours.transitions)
    return ours, naive


@pytest.mark.parametrize("K", [2, 4, 31])
def test_nll_and_paths_equal_bertlabs_crf(K):
    ours, naive = _pair(K, K)
    B, T = 7, 20
    em = 3 * torch.randn(B, T, K)
    lengths = torch.randint(1, T + 1, (B,))
    mask = torch.arange(T)[None] < lengths[:, None]
    tags = torch.randint(K, (B, T))
    for red in ("mean", "sum", "none"):
        torch.testing.assert_close(naive.nll(em, tags, mask, red), ours.nll(em, tags, mask, red), rtol=1e-4, atol=1e-4)
    assert torch.equal(naive.decode(em, mask), ours.decode(em, mask))
    assert torch.equal(naive.decode(em, mask, 0, 0), ours.decode(em, mask, 0, 0))
    assert torch.equal(naive.decode(em, mask, 1, 0), ours.decode(em, mask, 1, 0))  # first wins a 1-step row
    # gradients reach the transitions only (start/end fixed at zero, as bert4keras)
    naive.nll(em, tags, mask).backward()
    assert naive.transitions.grad is not None and naive.crf.start_transitions.grad is None


def test_registered_as_crf():
    name, head = build_tagging_head({"type": "torchcrf"}, 4)
    assert name == "crf" and isinstance(head, TorchCrfHead) and head.transitions.shape == (4, 4)
