"""Left-to-right decoding for a language model: greedy, temperature, top-k, top-p sampling
and beam search (pure torch; post 7124 samples with top-k, k = 5).

The model is seen through one function, ``step(tokens, state) -> (logits, state)``:
``tokens`` ``[N, t]`` are the full prefixes so far (the prompt included) and ``logits``
``[N, V]`` the scores of the NEXT token only, so a model computes its output layer at one
position per row. ``state`` is whatever the model keeps between calls (None at first), e.g.
a key/value cache and the condition of each row; a model without a cache ignores it and
re-encodes ``tokens``. When rows finish or beams are reordered the decoder calls
``select(state, index)`` (``index`` ``[N']``, repeats allowed) so the state follows its
rows; with no ``select`` the state must be None.

Rules shared by all strategies:
- ``banned_ids`` (the caller passes [PAD]/[UNK]/[CLS]/[MASK]) never come out;
- a row stops when it produces ``eos_id`` ([SEP]), which is not part of the returned
  tokens, or after ``max_len`` new tokens ([SEP] counts);
- sampling draws from a ``torch.Generator`` seeded with ``seed``: same seed, same texts.

Beam search keeps the ``beam_size`` best candidates (sum of log-probabilities, no length
penalty) at every step; a candidate ending in ``eos_id`` leaves the beam as a finished
hypothesis, as does every beam alive after ``max_len`` tokens; it stops early once the best
finished score is at least the best live score (log-probabilities only fall). With beam 1
it is greedy decoding; with a beam as large as the number of sequences it is the exact
best sequence. ``length_normalize=True`` ranks the finished hypotheses by their MEAN
log-probability (the end token counted) instead of the sum; the early stop then uses the
bound a live beam of sum S can still reach, S / max_len (log-probabilities are <= 0).

``raw_scores=True``: the step already returns log-probabilities, used as they are (no
renormalisation; banned ids still set to -inf), so a constraint may set tokens to -inf and
leave the others' probabilities unchanged (the passage n-gram constraint of the seq2seq
reader). ``sample(..., return_logprobs=True)`` also returns the log-probability of every
chosen token (the end token's included when it was chosen).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

import torch
from torch import Tensor

__all__ = ["STRATEGIES", "filter_top_k", "filter_top_p", "sample", "beam_search", "generate", "check_args"]

STRATEGIES = ("greedy", "temperature", "topk", "topp", "beam")

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]
SelectFn = Callable[[Any, Tensor], Any]


def filter_top_k(logits: Tensor, k: int) -> Tensor:
    """``logits`` ``[N, V]`` with everything outside each row's ``k`` largest set to -inf
    (exactly ``k`` kept; ties broken by ``torch.topk``)."""
    if k < 1 or k > logits.size(-1):
        raise ValueError(f"k must be in [1, {logits.size(-1)}] (the vocabulary size), got {k}")
    idx = logits.topk(k, dim=-1).indices
    out = torch.full_like(logits, -math.inf)
    return out.scatter(-1, idx, logits.gather(-1, idx))


def filter_top_p(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering: keep, per row, the smallest set of most probable tokens whose
    probability mass is at least ``p`` (at least one token), the rest -inf."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    mass_before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def check_args(
    strategy: str,
    vocab_size: int | None = None,
    k: int = 5,
    p: float = 0.9,
    temperature: float = 1.0,
    beam_size: int = 4,
    max_len: int = 64,
) -> None:
    """ValueError naming the bad value (the CLI turns it into a one-line error)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if strategy == "topk" and (k < 1 or (vocab_size is not None and k > vocab_size)):
        raise ValueError(
            f"k must be in [1, {vocab_size}] (the vocabulary size), got {k}"
            if vocab_size
            else f"k must be >= 1, got {k}"
        )
    if strategy == "topp" and not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    if strategy in ("temperature", "topk", "topp") and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if strategy == "beam" and beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")


def _ban(logits: Tensor, banned_ids: Sequence[int]) -> Tensor:
    logits = logits.float()
    if banned_ids:
        logits = logits.clone()
        logits[:, list(banned_ids)] = -math.inf
    return logits


def _logp(logits: Tensor, banned_ids: Sequence[int], raw_scores: bool) -> Tensor:
    """Log-probabilities ``[N, V]`` of a step's output (see ``raw_scores`` in the module doc)."""
    logits = _ban(logits, banned_ids)
    return logits if raw_scores else logits.log_softmax(-1)


def _choose(
    logits: Tensor, strategy: str, k: int, p: float, temperature: float, generator: torch.Generator | None
) -> Tensor:
    """The next token of every row, ``[N]``."""
    if strategy == "greedy":
        return logits.argmax(-1)
    logits = logits / temperature
    if strategy == "topk":
        logits = filter_top_k(logits, k)
    elif strategy == "topp":
        logits = filter_top_p(logits, p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@overload
def sample(
    step: StepFn,
    prompt: Tensor,
    *,
    strategy: str = ...,
    k: int = ...,
    p: float = ...,
    temperature: float = ...,
    max_len: int = ...,
    eos_id: int,
    banned_ids: Sequence[int] = ...,
    seed: int | None = ...,
    state: Any = ...,
    select: SelectFn | None = ...,
    raw_scores: bool = ...,
    return_logprobs: Literal[False] = ...,
) -> list[list[int]]: ...


@overload
def sample(
    step: StepFn,
    prompt: Tensor,
    *,
    strategy: str = ...,
    k: int = ...,
    p: float = ...,
    temperature: float = ...,
    max_len: int = ...,
    eos_id: int,
    banned_ids: Sequence[int] = ...,
    seed: int | None = ...,
    state: Any = ...,
    select: SelectFn | None = ...,
    raw_scores: bool = ...,
    return_logprobs: Literal[True],
) -> list[tuple[list[int], list[float]]]: ...


def sample(
    step: StepFn,
    prompt: Tensor,
    *,
    strategy: str = "topk",
    k: int = 5,
    p: float = 0.9,
    temperature: float = 1.0,
    max_len: int = 64,
    eos_id: int,
    banned_ids: Sequence[int] = (),
    seed: int | None = 0,
    state: Any = None,
    select: SelectFn | None = None,
    raw_scores: bool = False,
    return_logprobs: bool = False,
) -> list[list[int]] | list[tuple[list[int], list[float]]]:
    """Greedy / temperature / top-k / top-p decoding of every row of ``prompt`` ``[N, P]``;
    returns the new tokens of each row (without ``eos_id``), with ``return_logprobs`` as
    ``(tokens, log-probabilities of the chosen tokens)``. Finished rows are dropped
    from the batch (``select``), so each step only runs the rows still going."""
    if strategy == "beam":
        raise ValueError("use beam_search for strategy 'beam'")
    generator = None
    if strategy != "greedy":
        generator = torch.Generator(device=prompt.device)
        generator.manual_seed(0 if seed is None else int(seed))
    rows = torch.arange(prompt.size(0), device=prompt.device)
    tokens = prompt
    out: list[list[int]] = [[] for _ in range(prompt.size(0))]
    logps: list[list[float]] = [[] for _ in range(prompt.size(0))]
    for _ in range(max_len):
        logits, state = step(tokens, state)
        if _ == 0:
            check_args(strategy, logits.size(-1), k, p, temperature, 1, max_len)
        logits = _ban(logits, banned_ids)
        nxt = _choose(logits, strategy, k, p, temperature, generator)  # shape: [N]
        done = nxt == eos_id
        if return_logprobs:
            lp = (logits if raw_scores else logits.log_softmax(-1)).gather(1, nxt[:, None]).squeeze(1)
            for r, v in zip(rows.tolist(), lp.tolist()):
                logps[r].append(v)
        for r, t, d in zip(rows.tolist(), nxt.tolist(), done.tolist()):
            if not d:
                out[r].append(t)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            if keep.numel() == 0:
                break
            rows, tokens = rows[keep], tokens[keep]
            if state is not None:
                if select is None:
                    raise ValueError("a step function that returns a state needs a select function")
                state = select(state, keep)
    return list(zip(out, logps)) if return_logprobs else out


def beam_search(
    step: StepFn,
    prompt: Tensor,
    *,
    beam_size: int = 4,
    max_len: int = 64,
    eos_id: int,
    banned_ids: Sequence[int] = (),
    state: Any = None,
    select: SelectFn | None = None,
    n_best: int = 1,
    length_normalize: bool = False,
    raw_scores: bool = False,
) -> list[list[tuple[float, list[int]]]]:
    """Beam search for every row of ``prompt`` ``[N, P]`` (one row at a time): per row the
    ``n_best`` best ``(log-probability, tokens)`` hypotheses, best first (see module doc;
    with ``length_normalize`` the score is the mean log-probability per token, eos included)."""
    check_args("beam", None, beam_size=beam_size, max_len=max_len)
    if state is not None and select is None:
        raise ValueError("a state needs a select function")
    results = []
    for i in range(prompt.size(0)):
        row = torch.tensor([i], device=prompt.device)
        seqs = prompt[i : i + 1]
        st = select(state, row) if state is not None and select is not None else None  # (checked above)
        scores = torch.zeros(1, device=prompt.device)
        finished: list[tuple[float, list[int]]] = []
        start = prompt.size(1)
        norm = (lambda s, n: s / n) if length_normalize else (lambda s, n: s)
        for t in range(max_len):
            logits, st = step(seqs, st)
            logp = _logp(logits, banned_ids, raw_scores)  # shape: [n, V]
            vocab = logp.size(-1)
            cand = (scores[:, None] + logp).reshape(-1)
            n = min(beam_size, int(torch.isfinite(cand).sum()))
            if n == 0:
                break
            top = cand.topk(n)
            beam, tok = top.indices // vocab, top.indices % vocab
            is_eos = tok == eos_id
            for b, s in zip(beam[is_eos].tolist(), top.values[is_eos].tolist()):
                finished.append((norm(s, t + 1), seqs[b, start:].tolist()))
            live = (~is_eos).nonzero().squeeze(-1)
            if live.numel() == 0:
                break
            seqs = torch.cat([seqs[beam[live]], tok[live, None]], dim=1)
            scores = top.values[live]
            if t == max_len - 1:  # out of length: the live beams are complete too
                finished.extend((norm(s, t + 1), q[start:].tolist()) for s, q in zip(scores.tolist(), seqs))
                break
            # the best a live beam can still reach: its sum now (sum), its sum over max_len tokens (mean)
            if finished and max(f[0] for f in finished) >= norm(float(scores.max()), max_len):
                break
            if st is not None and select is not None:
                st = select(st, beam[live])
        finished.sort(key=lambda f: -f[0])
        results.append(finished[:n_best])
    return results


def generate(
    step: StepFn,
    prompt: Tensor,
    *,
    strategy: str = "topk",
    k: int = 5,
    p: float = 0.9,
    temperature: float = 1.0,
    beam_size: int = 4,
    max_len: int = 64,
    eos_id: int,
    banned_ids: Sequence[int] = (),
    seed: int | None = 0,
    state: Any = None,
    select: SelectFn | None = None,
) -> list[list[int]]:
    """One token list per prompt row with the chosen strategy (beam: the best hypothesis)."""
    check_args(strategy, None, k, p, temperature, beam_size, max_len)
    if strategy == "beam":
        best = beam_search(
            step,
            prompt,
            beam_size=beam_size,
            max_len=max_len,
            eos_id=eos_id,
            banned_ids=banned_ids,
            state=state,
            select=select,
        )
        return [b[0][1] if b else [] for b in best]
    return sample(
        step,
        prompt,
        strategy=strategy,
        k=k,
        p=p,
        temperature=temperature,
        max_len=max_len,
        eos_id=eos_id,
        banned_ids=banned_ids,
        seed=seed,
        state=state,
        select=select,
    )
