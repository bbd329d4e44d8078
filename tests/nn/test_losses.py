"""Mixed precision: under CPU bf16 autocast the tagging heads' NLL, gradients and Viterbi
paths equal the fp32 ones on the same inputs (NLL within 1e-5 relative, gradients within
1e-5 absolute, paths identical), since nn/losses.float32 runs them with autocast off."""

from __future__ import annotations

import pytest
import torch

from bertlab.nn import losses
from bertlab.nn.crf import CRF
from bertlab.nn.heads import SoftmaxHead
from bertlab.nn.memm import MEMM


def _inputs(T: int, K: int = 5):
    g = torch.Generator().manual_seed(T)
    em = torch.randn(6, T, K, generator=g) * 4
    tags = torch.randint(0, K, (6, T), generator=g)
    mask = torch.ones(6, T, dtype=torch.bool)
    mask[2, T // 2 :] = False
    mask[4, 1:] = False
    return em, tags, mask


@pytest.mark.parametrize("T", [3, 40])  # short: loop route; long: scan route
@pytest.mark.parametrize("head", ["crf", "crf_start_end", "memm", "softmax"])
def test_bf16_autocast_nll_gradients_and_paths_equal_fp32(head, T):
    torch.manual_seed(0)
    make = {
        "crf": lambda: CRF(5),
        "crf_start_end": lambda: CRF(5, include_start_end=True),
        "memm": lambda: MEMM(5),
        "softmax": lambda: SoftmaxHead(5),
    }[head]
    module = make()
    em, tags, mask = _inputs(T)
    # emissions from a Linear layer, as in the task: bf16 under autocast, fp32 without
    lin = torch.nn.Linear(5, 5)

    def run(autocast: bool):
        module.zero_grad()
        lin.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            e = lin(em)
            if autocast:
                assert e.dtype == torch.bfloat16
            nll = module.nll(e, tags, mask)
            path = module.decode(e, mask)
        nll.backward()
        grads = [p.grad.clone() for p in (*module.parameters(), *lin.parameters()) if p.grad is not None]
        return e.detach().float(), nll.detach(), grads, path

    e16, nll16, g16, p16 = run(True)
    assert nll16.dtype == torch.float32
    # the fp32 reference on the SAME inputs: the bf16 emissions, upcast
    module.zero_grad()
    e = e16.clone().requires_grad_(True)
    nll32 = module.nll(e, tags, mask)
    nll32.backward()
    assert nll16.item() == pytest.approx(nll32.item(), rel=1e-5)
    assert torch.equal(p16, module.decode(e16, mask))
    for p, g in zip([p for p in module.parameters() if p.grad is not None], g16, strict=False):
        assert torch.allclose(p.grad, g, atol=1e-5)


def test_float32_helpers():
    x = torch.randn(4, 7).bfloat16()
    assert losses.upcast(x).dtype == torch.float32 and losses.upcast(3) == 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert losses.sigmoid(x).dtype == torch.float32
        ce = losses.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
        assert ce.dtype == torch.float32

        @losses.float32
        def mm(a, b):
            return a @ b

        assert mm(x, x.T).dtype == torch.float32  # autocast would give bf16
        assert (x.float() @ x.float().T).dtype == torch.bfloat16
    assert torch.allclose(ce, torch.nn.functional.cross_entropy(x.float(), torch.tensor([0, 1, 2, 3])))
