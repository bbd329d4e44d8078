"""Compiled CPU kernels of the CRF (numba), used by :mod:`bertlab.nn.crf` when numba is installed.

Viterbi decoding is T dependent steps of tiny arithmetic (B*K*K max-plus operations each), so
in eager torch every step pays several operator dispatches (microseconds) for nanoseconds of
work. Here the whole forward pass and back-trace are one compiled loop nest: the batch is the
innermost (contiguous, vectorised) dimension, values are computed in the same order as the
torch loop (``delta[i] + trans[i, j]``, max over i, then ``+ emission[j]``) and the first
maximum wins every argmax, as in pytorch-crf, so paths are identical to the other routes.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

numba: ModuleType | None
try:  # numba is a dependency of bertlab, but the CRF must keep working without it
    numba = importlib.import_module("numba")
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None


def _viterbi_kernel(
    x: np.ndarray, lengths: np.ndarray, trans: np.ndarray, start: np.ndarray, end: np.ndarray, out: np.ndarray
) -> None:
    """x: emissions ``[T, K, B]``; lengths ``[B]`` (>= 1, prefix masks); writes the best path of
    row b into ``out[b, :lengths[b]]`` (the rest of ``out`` is left untouched)."""
    T, K, B = x.shape
    delta = np.empty((T, K, B), dtype=x.dtype)
    best = np.empty(B, dtype=x.dtype)
    for j in range(K):
        for b in range(B):
            delta[0, j, b] = start[j] + x[0, j, b]
    for t in range(1, T):
        for j in range(K):
            for b in range(B):
                best[b] = -np.inf
            for i in range(K):
                w = trans[i, j]
                for b in range(B):
                    v = delta[t - 1, i, b] + w
                    if v > best[b]:
                        best[b] = v
            for b in range(B):
                delta[t, j, b] = best[b] + x[t, j, b]
    for b in range(B):
        last = lengths[b] - 1
        y = 0
        top = delta[last, 0, b] + end[0]
        for j in range(1, K):
            v = delta[last, j, b] + end[j]
            if v > top:
                top = v
                y = j
        out[b, last] = y
        for t in range(last, 0, -1):
            prev = 0
            top = delta[t - 1, 0, b] + trans[0, y]
            for i in range(1, K):
                v = delta[t - 1, i, b] + trans[i, y]
                if v > top:
                    top = v
                    prev = i
            y = prev
            out[b, t - 1] = y


viterbi_kernel = numba.njit(cache=True, nogil=True)(_viterbi_kernel) if numba is not None else None


def available() -> bool:
    return viterbi_kernel is not None
