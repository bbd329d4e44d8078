"""Losses and structured scores in float32 under mixed precision.

Under ``trainer.precision=bf16-mixed`` (CPU or GPU) or ``16-mixed`` (GPU) autocast runs
matrix products in half precision. The tagging heads' log-partition functions (the CRF's
exp-space sum-product and its hand-written backward, the MEMM's soft-maxes), Viterbi scores,
the pointer heads' sigmoids and the losses over a vocabulary need float32: half precisions
lose the small differences of large log-scores, and a custom autograd backward must meet
the dtype its forward saved. :func:`float32` runs a function with autocast off and its half
precision tensor arguments upcast, so its result equals the fp32 computation on the same
(upcast) inputs; :func:`cross_entropy`, :func:`sigmoid` are the one-line forms.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

_HALF = (torch.float16, torch.bfloat16)
Fn = TypeVar("Fn", bound=Callable[..., Any])


def upcast(x: Any) -> Any:
    """A float16/bfloat16 tensor as float32; anything else unchanged."""
    return x.float() if isinstance(x, Tensor) and x.dtype in _HALF else x


@contextlib.contextmanager
def autocast_off():
    """Autocast disabled on CPU and (when present) CUDA for the block."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


def float32(fn: Fn) -> Fn:
    """Decorator: run ``fn`` in float32 (autocast off, half tensor arguments upcast)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")) and not any(
            isinstance(a, Tensor) and a.dtype in _HALF for a in (*args, *kwargs.values())
        ):
            return fn(*args, **kwargs)
        with autocast_off():
            return fn(*(upcast(a) for a in args), **{k: upcast(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def cross_entropy(logits: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
    """``F.cross_entropy`` in float32 (softmax over a vocabulary or label set)."""
    with autocast_off():
        return F.cross_entropy(logits.float(), target, **kwargs)


def sigmoid(logits: Tensor) -> Tensor:
    """``sigmoid`` in float32 (the pointer heads' probabilities and their BCE losses)."""
    return torch.sigmoid(logits.float())
