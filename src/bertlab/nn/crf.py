"""Linear-chain CRF with bert4keras semantics: exact, vectorised, fast on CPU.

bert4keras' ``ConditionalRandomField`` scores a tag path ``y`` of a sequence as

    score(y) = sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t]

(here optionally ``+ start[y_0] + end[y_last]`` with ``include_start_end=True``, the
pytorch-crf convention) and trains on ``log Z - score(gold)``. Steps where ``mask`` is False
are *skipped*: the chain runs from the previous unmasked step straight to the next one.
Masks are normally prefix masks (lengths); any other mask is first compacted to one by moving
the unmasked steps to the front of each row, in order (``_compact``).

Two exact routes compute ``log Z`` (with a hand-written backward: node and edge marginals from
forward and backward vectors, no autograd graph over the recursion) and the Viterbi path:

``"loop"``
    the recursions over time, a few small tensor ops per step for the whole batch.
    ``log Z``: forward and backward recursions share every op; ragged rows need no per-row
    work thanks to an absorbing PAD tag (see ``_LogPartitionLoop``). Viterbi: a max-plus
    forward loop, then a back-trace loop that recomputes only the back-pointers on the path.
    Work O(T K^2), T sequential steps.
``"scan"``
    an associative scan over time: the up-sweep multiplies neighbouring [K, K] step matrices
    (masked steps are the identity) in log2(T) levels, the down-sweeps turn the kept tree into
    the forward and backward vectors of every step. Viterbi takes the argmax of the
    max-marginals and checks it exactly (ties are re-decoded by the loop). Work O(T K^3).

``"compiled"`` (Viterbi on CPU, with numba: :mod:`bertlab.nn.crf_kernels`)
    the loop route's Viterbi as one compiled loop nest: no per-step operator dispatch.

The loop is faster on CPU except for very few tags, the scan on GPU; decoding on CPU uses the
compiled kernel when numba is there. ``_choose_route`` picks one, ``CRF.route`` ("auto",
"loop", "scan" or "compiled") overrides it ("compiled" computes ``log Z`` as "auto" does).

The sum-product runs in exp space (matrix products, rescaled per step) instead of logsumexp:
emissions are shifted by their per-step maximum and transitions by their maximum before
``exp``, so only score *differences* within one step must fit the exponent range (some 80
nats in float32). Half-precision inputs are computed in float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from bertlab.nn import crf_kernels
from bertlab.nn.losses import float32

__all__ = ["CRF"]

_REDUCTIONS = ("mean", "sum", "none")
_ROUTES = ("auto", "loop", "scan", "compiled")


class CRF(nn.Module):
    """Linear-chain conditional random field over ``num_tags`` tags.

    Args:
        num_tags: number of tags K.
        include_start_end: also learn start / end transition scores (pytorch-crf style).
            bert4keras has none, hence the default False.

    Attributes:
        transitions: ``[K, K]`` parameter, ``transitions[from, to]``; glorot-uniform init.
        start_transitions: ``[K]`` parameter (zeros at init), or None.
        end_transitions: ``[K]`` parameter (zeros at init), or None.
        route: "auto" (default), "loop" or "scan": which exact algorithm to use.
    """

    def __init__(self, num_tags: int, include_start_end: bool = False):
        super().__init__()
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive int, got {num_tags!r}")
        self.num_tags = num_tags
        self.include_start_end = bool(include_start_end)
        self.route = "auto"
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        if self.include_start_end:
            self.start_transitions = nn.Parameter(torch.empty(num_tags))
            self.end_transitions = nn.Parameter(torch.empty(num_tags))
        else:
            self.register_parameter("start_transitions", None)
            self.register_parameter("end_transitions", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Keras' glorot_uniform, the initializer of bert4keras' CRF transitions.
        bound = math.sqrt(6.0 / (2 * self.num_tags))
        nn.init.uniform_(self.transitions, -bound, bound)
        if self.start_transitions is not None:
            nn.init.zeros_(self.start_transitions)
            nn.init.zeros_(self.end_transitions)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, include_start_end={self.include_start_end}"

    # ------------------------------------------------------------------ training
    @float32
    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood ``log Z - score(tags)`` of the gold paths.

        Args:
            emissions: ``[B, T, K]`` float scores.
            tags: ``[B, T]`` integer gold tags; only unmasked positions are read (masked ones
                may hold anything, e.g. -100).
            mask: ``[B, T]`` bool (or 0/1 integer); ``mask[:, 0]`` must be all True.
            reduction: "mean" (over sequences), "sum" or "none".

        Returns:
            a scalar, or ``[B]`` for ``reduction="none"``.
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {_REDUCTIONS}")
        emissions, mask = self._check(emissions, mask)
        tags = check_tags(tags, mask, self.num_tags)

        em, mask, lengths, order = _compact(emissions, mask)
        if order is not None:
            tags = tags.gather(1, order)
        tags = tags[:, : em.shape[1]].masked_fill(~mask, 0)  # shape: [B, T]
        trans, start, end = self._params(em.dtype)
        em = em.masked_fill(~mask[..., None], 0.0)  # padding may hold inf/nan; it must not reach any product

        route = self._route(em)
        log_z = (_LogPartitionScan if route == "scan" else _LogPartitionLoop).apply(em, trans, start, end, mask)
        nll = log_z - _path_score(em, tags, trans, start, end, mask, lengths)  # shape: [B]
        if reduction == "mean":
            return nll.mean()
        if reduction == "sum":
            return nll.sum()
        return nll

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    @float32
    def decode(
        self, emissions: Tensor, mask: Tensor, first_tag: int | None = None, last_tag: int | None = None
    ) -> Tensor:
        """Viterbi: the highest-scoring tag path of every sequence.

        Args:
            emissions: ``[B, T, K]`` float scores.
            mask: ``[B, T]`` bool (or 0/1 integer); ``mask[:, 0]`` must be all True.
            first_tag: if given, the tag forced at position 0.
            last_tag: if given, the tag forced at the last unmasked position of every row
                (except one-step rows when it conflicts with ``first_tag``).

        Returns:
            ``[B, T]`` long tensor of tags, -1 where ``mask`` is False.
        """
        emissions, mask = self._check(emissions, mask)
        K = self.num_tags
        check_forced_tags(first_tag, last_tag, K)
        B, T, _ = emissions.shape
        em, mask, lengths, order = _compact(emissions.detach(), mask)
        params = self._params(em.dtype)
        trans = params[0].detach()
        start, end = (p.detach() if p is not None else None for p in params[1:])
        start_vec = start if start is not None else em.new_zeros(K)  # shape: [K]
        end_vec = end if end is not None else em.new_zeros(K)  # shape: [K]
        # forcing a tag = every other tag scores -inf at that end of the chain
        tag_ids = torch.arange(K, device=em.device)
        if first_tag is not None:
            start_vec = start_vec.masked_fill(tag_ids != first_tag, -math.inf)
        if last_tag is not None:
            end_vec = end_vec.masked_fill(tag_ids != last_tag, -math.inf)

        route = self._route(em, decoding=True)
        viterbi = {"scan": _viterbi_scan, "loop": _viterbi_loop, "compiled": _viterbi_compiled}[route]
        path = viterbi(em, trans, start_vec, end_vec, mask)  # shape: [B, T']
        if first_tag is not None and last_tag is not None and first_tag != last_tag:
            # a one-step sequence cannot satisfy both: position 0 is forced, first_tag wins
            path[:, 0].masked_fill_(lengths == 1, first_tag)

        out = path.new_full((B, T), -1)
        if order is None:
            out[:, : path.shape[1]] = path
        else:
            out.scatter_(1, order[:, : path.shape[1]], path)  # masked positions keep -1
        return out

    # ------------------------------------------------------------------ helpers
    def _check(self, emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return check_inputs(emissions, mask, self.num_tags, self.transitions.dtype)

    def _params(self, dtype: torch.dtype) -> tuple[Tensor, Tensor | None, Tensor | None]:
        def cast(p):
            return p if p is None or p.dtype == dtype else p.to(dtype)

        return cast(self.transitions), cast(self.start_transitions), cast(self.end_transitions)

    def _route(self, em: Tensor, decoding: bool = False) -> str:
        if self.route not in _ROUTES:
            raise ValueError(f"CRF.route must be one of {_ROUTES}, got {self.route!r}")
        if self.route == "compiled":
            if not decoding:  # log Z has no compiled route
                return _choose_route(em.shape[-1], em.shape[1], em.device)
            if em.device.type != "cpu" or not crf_kernels.available():
                raise ValueError("CRF.route='compiled' needs CPU tensors and numba (pip install numba)")
            return "compiled"
        if self.route == "auto":
            return _choose_route(em.shape[-1], em.shape[1], em.device, decoding)
        return self.route


# ====================================================================== shared pieces
def _choose_route(num_tags: int, length: int, device: torch.device, decoding: bool = False) -> str:
    """The faster exact route for K tags and T steps.

    A scan level does K times the work of a loop step but there are only log2(T) of them.
    On CPU (measured on 2 cores, B=32) each loop step costs a few microseconds of fixed
    overhead while the scan's K^3 products are cheap only for a handful of tags; on GPU the
    loop's T kernel launches dominate, and K^3 bounds the scan's memory (K^3 T B / 2 floats).
    """
    if device.type == "cpu":
        if decoding and crf_kernels.available():
            return "compiled"
        return "scan" if num_tags <= 5 and length >= 16 else "loop"
    return "scan" if num_tags <= 16 else "loop"


def check_inputs(emissions: Tensor, mask: Tensor, num_tags: int, param_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Validate ``emissions [B, T, K]`` and ``mask [B, T]`` (shared by the CRF and MEMM heads);
    returns emissions in the compute dtype (half precisions -> float32: exp-space products need
    float32's range) and the mask as bool on the emissions' device."""
    if emissions.dim() != 3 or emissions.shape[-1] != num_tags:
        raise ValueError(f"emissions must have shape [B, T, {num_tags}], got {tuple(emissions.shape)}")
    if not emissions.dtype.is_floating_point:
        raise ValueError(f"emissions must be a float tensor, got {emissions.dtype}")
    dtype = torch.promote_types(emissions.dtype, param_dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    emissions = emissions.to(dtype)
    B, T, _ = emissions.shape
    if B == 0 or T == 0:
        raise ValueError(f"emissions must have a non-empty batch and time axis, got {tuple(emissions.shape)}")
    if mask.shape != (B, T):
        raise ValueError(f"mask must have shape {(B, T)} like emissions[..., 0], got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or mask.is_complex():
            raise ValueError(f"mask must be bool (or 0/1 integer), got {mask.dtype}")
        mask = mask != 0
    mask = mask.to(emissions.device)
    if not bool(mask[:, 0].all()):
        raise ValueError("mask[:, 0] must be True for every sequence (each sequence needs its first step)")
    return emissions, mask


def check_tags(tags: Tensor, mask: Tensor, num_tags: int) -> Tensor:
    """Validate gold ``tags [B, T]`` against a checked mask; returns them as long on its device."""
    if tags.shape != mask.shape:
        raise ValueError(f"tags must have shape {tuple(mask.shape)} like the mask, got {tuple(tags.shape)}")
    if tags.dtype.is_floating_point or tags.dtype == torch.bool or tags.is_complex():
        raise ValueError(f"tags must be an integer tensor, got {tags.dtype}")
    tags = tags.to(device=mask.device, dtype=torch.long)
    bad = mask & ((tags < 0) | (tags >= num_tags))
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"tags[{b}, {t}] = {int(tags[b, t])} is outside [0, {num_tags}) at an unmasked position")
    return tags


def check_forced_tags(first_tag: int | None, last_tag: int | None, num_tags: int) -> None:
    """Validate the tags a decode may force at the ends of the chain (shared by the CRF and MEMM heads)."""
    for name, tag in (("first_tag", first_tag), ("last_tag", last_tag)):
        if tag is not None and not (isinstance(tag, int) and 0 <= tag < num_tags):
            raise ValueError(f"{name} must be None or an int in [0, {num_tags}), got {tag!r}")


def _compact(emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Turn any mask into a prefix mask by moving unmasked steps to the front of each row.

    Returns ``(emissions, mask, lengths, order)``: emissions ``[B, T', K]`` and mask ``[B, T']``
    cut to ``T' = max(lengths)``, lengths ``[B]``, and ``order`` ``[B, T]`` (original position of
    each compacted step) or None when the mask already was a prefix mask.
    """
    B, T, K = emissions.shape
    lengths = mask.sum(1)  # shape: [B]
    t_max = int(lengths.max())
    prefix = torch.arange(T, device=mask.device) < lengths[:, None]  # shape: [B, T]
    order = None
    if not torch.equal(prefix, mask):
        # stable sort on "is masked" keeps the unmasked steps in their original order
        order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices  # shape: [B, T]
        emissions = emissions.gather(1, order[..., None].expand(B, T, K))
    return emissions[:, :t_max], prefix[:, :t_max], lengths, order


def _path_score(
    em: Tensor, tags: Tensor, trans: Tensor, start: Tensor | None, end: Tensor | None, mask: Tensor, lengths: Tensor
) -> Tensor:
    """Score of the given (sanitised, in-range) tag paths under prefix masks; shape: [B]."""
    score = em.gather(2, tags[..., None])[..., 0].masked_fill(~mask, 0.0).sum(1)
    if em.shape[1] > 1:
        score = score + trans[tags[:, :-1], tags[:, 1:]].masked_fill(~mask[:, 1:], 0.0).sum(1)
    if start is not None:
        score = score + start[tags[:, 0]]
    if end is not None:
        score = score + end[tags.gather(1, (lengths - 1)[:, None])[:, 0]]
    return score


# ====================================================================== partition function
class _LogPartitionLoop(torch.autograd.Function):
    """``log Z`` [B] by the rescaled forward recursion; gradient from a fused backward recursion.

    Ragged rows are made uniform with an absorbing PAD tag (index K): every row moves from its
    last tag i to PAD with score ``end[i]`` and stays there (score 0, PAD emission 0) through
    its padding and one extra step T that all rows share, so ``Z = alpha_T(PAD)`` for every row
    and the backward recursion can start at step T for the whole batch.

    Direction 0 runs the forward algorithm over t = 0..T, direction 1 (only when a gradient
    is needed) the backward algorithm over t = T..0, in the same ops. For iteration s,
    ``pre[s]`` is the vector entering the step (before its emission) and ``post[s]`` the one
    leaving it, rescaled to max 1: ``post[t, 0] ~ alpha_t`` and ``pre[T - t, 1] ~ beta_t``.
    """

    @staticmethod
    def forward(ctx, em: Tensor, trans: Tensor, start: Tensor | None, end: Tensor | None, mask: Tensor) -> Tensor:
        B, T, K = em.shape
        need_grad = any(ctx.needs_input_grad[:4])
        dirs = 2 if need_grad else 1
        em_max = em.amax(-1, keepdim=True)  # shape: [B, T, 1]
        # exp-space steps over K+1 tags; shape: [T+1, B, K+1]
        x = em.new_zeros(T + 1, B, K + 1)
        x[:T, :, :K] = torch.exp(em - em_max).masked_fill_(~mask[..., None], 0.0).transpose(0, 1)
        x[:T, :, K] = (~mask).T
        x[T, :, K] = 1.0
        start_max, start_exp = _shifted_exp(start, K, em)
        end_max, end_exp = _shifted_exp(end, K, em)
        trans_max = trans.max()
        # Each block is shifted by its own maximum: every row takes len-1 real transitions,
        # one into PAD and the rest PAD -> PAD (score 0), so the shifts are added back per row.
        E = em.new_zeros(K + 1, K + 1)  # shape: [K+1, K+1]
        E[:K, :K] = torch.exp(trans - trans_max)
        E[:K, K] = end_exp
        E[K, K] = 1.0

        X = x[:, None] if dirs == 1 else torch.stack([x, x.flip(0)], 1)  # shape: [T+1, dirs, B, K+1]
        W = E[None] if dirs == 1 else torch.stack([E, E.T])  # shape: [dirs, K+1, K+1]
        pre = em.new_empty(T + 1, dirs, B, K + 1)
        post = em.new_empty(T + 1, dirs, B, K + 1)
        norm = em.new_empty(T + 1, dirs, B, 1)
        pre[0, 0, :, :K] = start_exp
        pre[0, 0, :, K] = 0.0
        if dirs == 2:
            pre[0, 1] = x[T]  # beta_T: only PAD
        # unbind once: indexing inside the loop costs as much as the tiny ops themselves
        pres, posts, Xs, norms = pre.unbind(0), post.unbind(0), X.unbind(0), norm.unbind(0)
        for s in range(T + 1):
            if s:
                torch.bmm(posts[s - 1], W, out=pres[s])
            torch.mul(pres[s], Xs[s], out=posts[s])
            torch.amax(posts[s], -1, keepdim=True, out=norms[s])
            posts[s].div_(norms[s])

        # post[T, 0] is exactly one-hot on PAD after rescaling, so log Z is all in the scales
        log_z = (
            norm[:, 0, :, 0].log().sum(0)
            + em_max[..., 0].masked_fill(~mask, 0.0).sum(1)
            + (mask.sum(1) - 1) * trans_max
            + start_max
            + end_max
        )
        if need_grad:
            ctx.save_for_backward(E, pre, post, mask)
        return log_z

    @staticmethod
    @once_differentiable  # the marginals are computed without a graph
    def backward(ctx, grad: Tensor):
        E, pre, post, mask = ctx.saved_tensors
        T1, _, B, K1 = pre.shape
        K = K1 - 1
        alpha = post[:, 0]  # shape: [T+1, B, K+1]
        beta = pre[:, 1].flip(0)  # shape: [T+1, B, K+1]
        beta_x = post[:, 1].flip(0)  # beta_t times the exp-emission of step t
        node = alpha * beta
        node_sum = node.sum(-1, keepdim=True)  # shape: [T+1, B, 1]
        node = node / node_sum  # node marginals p(y_t = j); zero on PAD at real steps
        g_em = (node[:-1, :, :K] * grad[:, None]).transpose(0, 1)  # shape: [B, T, K]
        g_trans = g_start = g_end = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[3]:
            # edge marginal p(y_{t-1}=i, y_t=j) = alpha_{t-1}(i) E(i,j) beta_x_t(j) / node_sum_{t-1};
            # the column into PAD holds the end transitions' marginals
            w = alpha[:-1] * (grad[:, None] / node_sum[:-1])
            edges = E * (w.reshape(-1, K1).T @ beta_x[1:].reshape(-1, K1))  # shape: [K+1, K+1]
            g_trans = edges[:K, :K] if ctx.needs_input_grad[1] else None
            g_end = edges[:K, K] if ctx.needs_input_grad[3] else None
        if ctx.needs_input_grad[2]:
            g_start = (node[0, :, :K] * grad[:, None]).sum(0)
        return g_em, g_trans, g_start, g_end, None


class _LogPartitionScan(torch.autograd.Function):
    """``log Z`` [B] by an associative scan over the step matrices (any mask).

    Step t >= 1 is the matrix ``M_t = E * x_t[None, :]`` (exp-space transition times the
    emission of the target tag), masked steps are the identity, and
    ``Z = alpha_0 M_1 ... M_{T-1} end``. The up-sweep multiplies neighbours pairwise, rescaling
    every product by its maximum; its levels are kept so that the backward's down-sweeps
    can produce every alpha_t and beta_t with vector-matrix products only.
    """

    @staticmethod
    def forward(ctx, em: Tensor, trans: Tensor, start: Tensor | None, end: Tensor | None, mask: Tensor) -> Tensor:
        B, T, K = em.shape
        em_max = em.amax(-1, keepdim=True)  # shape: [B, T, 1]
        x = torch.exp(em - em_max)  # shape: [B, T, K]
        trans_max = trans.max()
        E = torch.exp(trans - trans_max)  # shape: [K, K]
        start_max, start_exp = _shifted_exp(start, K, em)
        end_max, end_exp = _shifted_exp(end, K, em)
        alpha0 = start_exp * x[:, 0]  # shape: [B, K]
        log_scale = start_max + end_max + em_max[:, 0, 0]
        levels: list[Tensor] = []
        alpha_last = alpha0
        if T > 1:
            M = E * x[:, 1:, None, :]  # shape: [B, T-1, K, K]
            M[~mask[:, 1:]] = torch.eye(K, dtype=em.dtype, device=em.device)
            log_scale = log_scale + ((em_max[:, 1:, 0] + trans_max) * mask[:, 1:]).sum(1)
            levels.append(M)
            while M.shape[1] > 1:
                n, h = M.shape[1], M.shape[1] // 2
                P = torch.matmul(M[:, 0 : 2 * h : 2], M[:, 1 : 2 * h : 2])  # shape: [B, h, K, K]
                c = P.amax((-2, -1))  # shape: [B, h]
                P.div_(c[..., None, None])
                log_scale = log_scale + c.log().sum(1)
                if n % 2:  # the odd one out moves up unchanged
                    P = torch.cat([P, M[:, -1:]], 1)
                levels.append(P)
                M = P
            alpha_last = (alpha0[:, None, :] @ M[:, 0])[:, 0]
        log_z = (alpha_last * end_exp).sum(-1).log() + log_scale
        if any(ctx.needs_input_grad[:4]):
            ctx.save_for_backward(x, E, alpha0, alpha_last, end_exp, mask, *levels)
        return log_z

    @staticmethod
    @once_differentiable  # the marginals are computed without a graph
    def backward(ctx, grad: Tensor):
        x, E, alpha0, alpha_last, end_exp, mask, *levels = ctx.saved_tensors
        B, T, K = x.shape
        end_exp = end_exp.expand(B, K)
        if T > 1:
            # Down-sweeps: ``pre[k]`` is the vector entering level-l element k (alpha before
            # it), ``suf[k]`` the one leaving it (beta after it); children of element k are
            # 2k and 2k+1 one level below.
            pre, suf = alpha0[:, None, :], end_exp[:, None, :]
            for M in reversed(levels[:-1]):
                n, h = M.shape[1], M.shape[1] // 2
                left = pre[:, :h]
                right = (left[:, :, None, :] @ M[:, 0 : 2 * h : 2])[:, :, 0]
                right = right / right.amax(-1, keepdim=True)
                after_right = suf[:, :h]
                after_left = (M[:, 1 : 2 * h : 2] @ after_right[..., None])[..., 0]
                after_left = after_left / after_left.amax(-1, keepdim=True)
                new_pre = torch.stack([left, right], 2).reshape(B, 2 * h, K)
                new_suf = torch.stack([after_left, after_right], 2).reshape(B, 2 * h, K)
                if n % 2:
                    new_pre = torch.cat([new_pre, pre[:, -1:]], 1)
                    new_suf = torch.cat([new_suf, suf[:, -1:]], 1)
                pre, suf = new_pre, new_suf
            beta0 = (levels[-1][:, 0] @ end_exp[..., None])[..., 0]
            alpha = torch.cat([pre, alpha_last[:, None]], 1)  # shape: [B, T, K]
            beta = torch.cat([beta0[:, None], suf], 1)  # shape: [B, T, K]
        else:
            alpha, beta = alpha_last[:, None], end_exp[:, None]
        node = alpha * beta
        node = node / node.sum(-1, keepdim=True)
        g = grad[:, None] * mask  # shape: [B, T]
        g_em = node * g[..., None]
        g_trans = g_start = g_end = None
        if ctx.needs_input_grad[1]:
            if T > 1:
                a, bx = alpha[:, :-1], beta[:, 1:] * x[:, 1:]
                norm = ((a @ E) * bx).sum(-1)  # shape: [B, T-1]
                w = a * (g[:, 1:] / norm)[..., None]
                g_trans = E * (w.reshape(-1, K).T @ bx.reshape(-1, K))
            else:
                g_trans = torch.zeros_like(E)
        # with identity steps carried through, alpha/beta at T-1 are those of the last step
        if ctx.needs_input_grad[2]:
            g_start = (node[:, 0] * grad[:, None]).sum(0)
        if ctx.needs_input_grad[3]:
            g_end = (node[:, -1] * grad[:, None]).sum(0)
        return g_em, g_trans, g_start, g_end, None


def _shifted_exp(v: Tensor | None, K: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """``(max(v), exp(v - max(v)))`` with zeros standing in for a missing vector."""
    if v is None:
        return like.new_zeros(()), like.new_ones(K)
    m = v.max()
    return m, torch.exp(v - m)


# ====================================================================== Viterbi
# Layout: tags first and batch last ([K, T, B], matrices [K, K, n, B]) so that every max over
# tags is a reduction over a leading dimension with the batch contiguous inside, which torch's
# CPU kernels vectorise well (reductions over a short last dimension are about 10x slower).


#: trace CPU paths back in numpy (tests switch it off to check the torch trace of other devices)
_NUMPY_TRACE = True


def _viterbi_loop(em: Tensor, trans: Tensor, start_vec: Tensor, end_vec: Tensor, mask: Tensor) -> Tensor:
    """Viterbi paths [B, T] (-1 on padding): max-plus forward loop, then a back-trace loop.

    Back-pointers are not stored (an argmax over [K, K, B] per step costs 5x the max): the
    back-trace recomputes ``argmax_i delta_{t-1}(i) + trans[i, y_t]`` for the one tag y_t of
    each row. For ragged rows it runs on a padded copy of the deltas with an extra PAD tag:
    padding steps allow only PAD, entered from tag i with score ``end_vec[i]`` and kept at
    score 0, so one trace from PAD at step T serves every row. The first maximum wins ties,
    as in pytorch-crf.
    """
    B, T, K = em.shape
    neg = -math.inf
    X = em.permute(1, 2, 0).contiguous()  # shape: [T, K, B]
    # W[j, i, b] = trans[i, j], expanded over the batch and flattened to [K, K*B]: the previous
    # deltas [K*B] then broadcast over the OUTER dimension (a plain row-wise add, 2x faster than
    # broadcasting a middle dimension) and the max over i is a middle-dimension reduction
    W = trans.T[..., None].expand(K, K, B).reshape(K, K * B)  # shape: [K, K*B]
    padded = em.new_full((T + 1, K + 1, B), neg)  # deltas plus the PAD tag and step
    delta = padded[:T, :K]  # shape: [T, K, B]
    torch.add(start_vec[:, None], X[0], out=delta[0])
    # unbind once: indexing inside the loop would cost as much as the tiny ops themselves
    deltas, Xs = delta.unbind(0), X.unbind(0)
    cand = em.new_empty(K, K * B)
    cand3 = cand.view(K, K, B)
    for t in range(1, T):  # padding steps compute values that are overwritten below
        torch.add(W, deltas[t - 1].reshape(K * B), out=cand)
        torch.amax(cand3, 1, out=deltas[t])
        deltas[t].add_(Xs[t])

    padding = ~mask.T  # shape: [T, B]
    delta.masked_fill_(padding[:, None], neg)
    padded[:T, K].masked_fill_(padding, 0.0)
    padded[T, K] = 0.0
    into = trans.new_full((K + 1, K + 1), neg)  # into[j, i]: padded transition score i -> j
    into[:K, :K] = trans.T
    into[K, :K] = end_vec
    into[K, K] = 0.0
    if em.device.type == "cpu" and _NUMPY_TRACE:
        # the trace is T dependent steps on [B, K+1] arrays: numpy's per-call overhead is a
        # fraction of torch's, and the step's arithmetic is tiny (both: first maximum wins)
        steps_np = padded.permute(0, 2, 1).contiguous().numpy()  # shape: [T+1, B, K+1]
        into_np = into.numpy()
        path_np = np.empty((T + 1, B), dtype=np.int64)
        path_np[T] = K
        col_np = np.empty((B, K + 1), dtype=steps_np.dtype)
        for t in range(T, 0, -1):
            np.add(steps_np[t - 1], into_np[path_np[t]], out=col_np)
            col_np.argmax(1, out=path_np[t - 1])
        return torch.from_numpy(path_np[:T].T.copy()).masked_fill_(padding.T, -1)
    # batch-major for the trace: an argmax over a [B, K] row is 3x faster than over columns
    steps = padded.permute(0, 2, 1).contiguous().unbind(0)  # shape: T+1 x [B, K+1]
    path = em.new_empty(T + 1, B, dtype=torch.long)
    path[T] = K
    paths = path.unbind(0)
    col = em.new_empty(B, K + 1)
    for t in range(T, 0, -1):
        torch.add(steps[t - 1], into.index_select(0, paths[t]), out=col)
        torch.argmax(col, 1, out=paths[t - 1])
    return path[:T].T.masked_fill(padding.T, -1)


def _viterbi_compiled(em: Tensor, trans: Tensor, start_vec: Tensor, end_vec: Tensor, mask: Tensor) -> Tensor:
    """Viterbi paths [B, T] (-1 on padding) by the compiled CPU kernel (prefix masks)."""
    B, T, K = em.shape
    out = np.full((B, T), -1, dtype=np.int64)
    kernel = crf_kernels.viterbi_kernel
    assert kernel is not None  # the "compiled" route is chosen only when crf_kernels.available()
    kernel(
        em.permute(1, 2, 0).contiguous().numpy(),
        mask.sum(1).numpy(),
        trans.contiguous().numpy(),
        start_vec.contiguous().numpy(),
        end_vec.contiguous().numpy(),
        out,
    )
    return torch.from_numpy(out)


def _viterbi_scan(em: Tensor, trans: Tensor, start_vec: Tensor, end_vec: Tensor, mask: Tensor) -> Tensor:
    """Viterbi paths [B, T] (-1 on padding) from max-marginals computed by a max-plus scan.

    Step t >= 1 is the matrix ``M_t[i, j] = trans[i, j] + em[t, j]`` (masked steps: the max-plus
    identity); the up-sweep combines neighbours, ``(A B)[i, j] = max_k A[i, k] + B[k, j]``,
    and the down-sweeps turn the kept levels into every delta_t (best score of a prefix ending
    in tag j at step t, emission included) and gamma_t (best score of the rest after it).
    ``delta_t + gamma_t`` is maximal exactly on the tags of the best paths, so its argmax per
    step is the Viterbi path when that is unique; ties are caught by an exact check and those
    rows decoded again by ``_viterbi_loop``.
    """
    B, T, K = em.shape
    em_ktb = em.permute(2, 1, 0)  # shape: [K, T, B]
    delta0 = start_vec[:, None] + em_ktb[:, 0]  # shape: [K, B]
    if T == 1:
        delta, gamma = delta0[:, None], end_vec[:, None, None].expand(K, 1, B)
    else:
        identity = torch.full((K, K, 1, 1), -math.inf, dtype=em.dtype, device=em.device)
        identity.diagonal().fill_(0.0)
        M = torch.where(mask[:, 1:].T, trans[:, :, None, None] + em_ktb[None, :, 1:], identity)  # shape: [K, K, T-1, B]
        levels = [M]
        while M.shape[2] > 1:
            n, h = M.shape[2], M.shape[2] // 2
            left, right = M[:, :, 0 : 2 * h : 2], M[:, :, 1 : 2 * h : 2]
            P = (left[:, :, None] + right[None]).amax(1)  # shape: [K, K, h, B]
            if n % 2:  # the odd one out moves up unchanged
                P = torch.cat([P, M[:, :, -1:]], 2)
            levels.append(P)
            M = P
        top = M[:, :, 0]  # shape: [K, K, B]
        # ``pre[:, k]`` enters element k of a level (the delta before it), ``suf[:, k]`` leaves
        # it (the gamma after it); the children of element k are 2k and 2k+1 one level below.
        pre, suf = delta0[:, None], end_vec[:, None, None].expand(K, 1, B)
        for M in reversed(levels[:-1]):
            n, h = M.shape[2], M.shape[2] // 2
            left = pre[:, :h]
            right = (left[:, None] + M[:, :, 0 : 2 * h : 2]).amax(0)
            after_right = suf[:, :h]
            after_left = (M[:, :, 1 : 2 * h : 2] + after_right[None]).amax(1)
            new_pre = torch.stack([left, right], 2).reshape(K, 2 * h, B)
            new_suf = torch.stack([after_left, after_right], 2).reshape(K, 2 * h, B)
            if n % 2:
                new_pre = torch.cat([new_pre, pre[:, -1:]], 1)
                new_suf = torch.cat([new_suf, suf[:, -1:]], 1)
            pre, suf = new_pre, new_suf
        delta = torch.cat([pre, (delta0[:, None] + top).amax(0)[:, None]], 1)  # shape: [K, T, B]
        gamma = torch.cat([(top + end_vec[None, :, None]).amax(1)[:, None], suf], 1)

    path = (delta + gamma).max(0).indices.masked_fill_(~mask.T, 0)  # shape: [T, B]
    # The path is optimal iff each step attains max_i delta_{t-1}(i) + trans[i, y_t] and the
    # last tag max(delta_last + end). Both sides are computed from the same float values by the
    # same additions, so the comparison is exact: no tolerance (masked steps: nothing to check).
    lengths = mask.sum(1)
    rows = torch.arange(B, device=em.device)
    final = delta[:, lengths - 1, rows].T + end_vec  # shape: [B, K]
    ok = final.gather(1, path[lengths - 1, rows][:, None])[:, 0] == final.amax(-1)
    if T > 1:
        prev, cur = path[:-1], path[1:]  # shape: [T-1, B]
        chosen = delta[:, :-1].gather(0, prev[None])[0] + trans[prev, cur]
        best = (delta[:, :-1] + trans[:, cur]).amax(0)
        ok &= ((chosen == best) | ~mask[:, 1:].T).all(0)
    path = path.T.masked_fill(~mask, -1)  # shape: [B, T]
    if not bool(ok.all()):
        redo = (~ok).nonzero()[:, 0]
        path[redo] = _viterbi_loop(em[redo], trans, start_vec, end_vec, mask[redo])
    return path
