"""Orthogonality regularisers for Linear kernels (post 4: the Self-Orthogonality Module).

Layout: as in the post (Keras), a kernel ``W`` is ``[d, k]`` (d inputs, k filters, ``y = x W``);
its columns are the filters. For a torch ``nn.Linear`` that is ``weight.T``
(:func:`kernel_of`). Penalties:

- **SOM** (:func:`som_penalty`): with the batch's inputs ``X`` (``[N, d]``),
  ``Y = tanh(gamma * X W)`` (gamma 10), every column L2-normalised over the batch,
  ``Theta = Y^T Y`` (``[k, k]``): ``Theta_ij`` estimates ``E[sgn(x.w_i) sgn(x.w_j)] =
  1 - 2 theta_ij / pi`` (theta = the angle between filters i and j, for inputs symmetric
  about the origin, e.g. Gaussian). ``R = lambda1 (sum_{i!=j} Theta_ij)^2 + lambda2
  sum_{i!=j} Theta_ij^2`` (100 and 1): the mean of the off-diagonal estimates pushed to 0
  and their spread made small, i.e. filters pairwise orthogonal *as the data sees them*.
- **soft** (:func:`soft_orthogonality`): ``||W^T W - I||_F^2``.
- **biggan** (:func:`biggan_orthogonality`): ``||(W^T W - I) * (1 - I)||_F^2`` (BigGAN's,
  off-diagonal only: filter norms are free).

:class:`OrthogonalityPenalty` attaches one of them to the Linear layers of a model chosen
by module-name patterns (forward hooks capture the layers' inputs for SOM) and returns
``weight * sum over layers`` for the training loss.

Also :func:`gram_deviation`, the statistic of post 3: ``mean((W^T W - I)^2)`` for
``y = W x`` with ``W`` ``[m, n]`` (torch's weight layout), i.e. how close the map is to an
isometry, and :func:`kernel_statistics`, its two parts: the diagonal part
``mean((diag(G) - 1)^2)`` (the squared norms) and the off-diagonal part measured on
normalised vectors, the mean squared cosine between distinct ones. ``G`` is the smaller Gram
matrix: ``W^T W`` (``[n, n]``, the columns) when ``m >= n``; for a wide kernel (``m < n``),
where ``W^T W`` has rank ``m`` and cannot be ``I``, ``W W^T`` (``[m, m]``, the rows), and
``gram_side`` says which. ``filter_cos2`` is always the mean squared cosine between the
output filters (torch rows = the Keras kernel's columns), the angles SOM acts on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from bertlab.optim import _matches
from bertlab.utils.errors import ConfigError

__all__ = [
    "KINDS",
    "OrthogonalityPenalty",
    "biggan_orthogonality",
    "gram_deviation",
    "kernel_of",
    "kernel_statistics",
    "mean_sq_cosine",
    "som_penalty",
    "som_theta",
    "soft_orthogonality",
]

KINDS = ("none", "som", "soft", "biggan")


def kernel_of(layer: nn.Linear) -> torch.Tensor:
    """The ``[d, k]`` kernel of a Linear layer (columns = output filters)."""
    return layer.weight.t()


def _som_columns(x: torch.Tensor, w: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    y = torch.tanh(gamma * (x @ w))  # shape: [N, k]
    return y / y.norm(dim=0, keepdim=True).clamp_min(eps)


def som_theta(x: torch.Tensor, w: torch.Tensor, gamma: float = 10.0, eps: float = 1e-12) -> torch.Tensor:
    """``Theta = Y^T Y`` (``[k, k]``) for inputs ``x`` ``[N, d]`` and kernel ``w`` ``[d, k]``."""
    y = _som_columns(x, w, gamma, eps)
    return y.t() @ y


def som_penalty(
    x: torch.Tensor,
    w: torch.Tensor,
    gamma: float = 10.0,
    lambda1: float = 100.0,
    lambda2: float = 1.0,
    eps: float = 1e-12,
) -> torch.Tensor:
    """The SOM regulariser ``R`` (a scalar) for inputs ``x`` ``[N, d]`` and kernel ``w`` ``[d, k]``.

    Without forming ``Theta`` when N < k: ``sum_ij Theta_ij = ||Y 1||^2`` and
    ``sum_ij Theta_ij^2 = ||Y^T Y||_F^2 = ||Y Y^T||_F^2``; the diagonal (``||y_i||^2``, 1 for
    a non-zero column) is subtracted.
    """
    y = _som_columns(x, w, gamma, eps)  # shape: [N, k]
    if y.shape[0] >= y.shape[1]:
        theta = y.t() @ y  # shape: [k, k]
        off = theta - torch.diag_embed(torch.diagonal(theta))
        off_sum, off_sq = off.sum(), off.pow(2).sum()
    else:  # fewer rows than filters: never form the k x k matrix
        diag = (y * y).sum(0)  # shape: [k]
        off_sum = y.sum(1).pow(2).sum() - diag.sum()
        off_sq = (y @ y.t()).pow(2).sum() - diag.pow(2).sum()  # shape of y y^T: [N, N]
    return lambda1 * off_sum.pow(2) + lambda2 * off_sq


def _gram_minus_eye(w: torch.Tensor) -> torch.Tensor:
    gram = w.t() @ w
    return gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)


def soft_orthogonality(w: torch.Tensor) -> torch.Tensor:
    """``||W^T W - I||_F^2`` for a ``[d, k]`` kernel."""
    return _gram_minus_eye(w).pow(2).sum()


def biggan_orthogonality(w: torch.Tensor) -> torch.Tensor:
    """``||(W^T W - I) * (1 - I)||_F^2`` = the squared off-diagonal of ``W^T W``."""
    g = _gram_minus_eye(w)
    return g.pow(2).sum() - torch.diagonal(g).pow(2).sum()


def gram_deviation(weight: torch.Tensor) -> torch.Tensor:
    """Post 3's statistic ``mean((W^T W - I)^2)`` for ``y = W x``, ``W`` ``[m, n]`` (torch layout)."""
    return _gram_minus_eye(weight).pow(2).mean()


def mean_sq_cosine(vectors: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean squared cosine between the distinct COLUMNS of ``vectors`` ``[d, k]`` (0 for k < 2):
    the off-diagonal of the Gram matrix of the column-normalised matrix."""
    k = vectors.shape[1]
    if k < 2:
        return vectors.new_zeros(())
    u = vectors / vectors.norm(dim=0, keepdim=True).clamp_min(eps)
    cos = u.t() @ u  # shape: [k, k]
    return (cos.pow(2).sum() - torch.diagonal(cos).pow(2).sum()) / (k * (k - 1))


@torch.no_grad()
def kernel_statistics(weight: torch.Tensor) -> dict[str, float | str]:
    """Post 3's statistic and its two parts for ``W`` ``[m, n]`` (torch layout), see the module
    docstring: ``gram_dev`` = mean((W^T W - I)^2), ``gram_side`` ("columns": W^T W, "rows": W W^T
    for a wide kernel), ``gram_diag`` = mean((diag(G) - 1)^2), ``gram_offdiag_cos2`` = mean squared
    cosine between the distinct vectors of that side, ``filter_cos2`` = the same between rows."""
    w = weight.detach().double()
    m, n = w.shape
    side = "columns" if m >= n else "rows"
    vecs = w if side == "columns" else w.t()  # the vectors as columns
    norms2 = vecs.pow(2).sum(0)
    return {
        "gram_dev": float(gram_deviation(w)),
        "gram_side": side,
        "gram_diag": float((norms2 - 1).pow(2).mean()),
        "gram_offdiag_cos2": float(mean_sq_cosine(vecs)),
        "filter_cos2": float(mean_sq_cosine(w.t())),
    }


class OrthogonalityPenalty:
    """An orthogonality loss term on the Linear layers of ``model`` matching ``patterns``.

    ``kind``: ``som`` | ``soft`` | ``biggan`` | ``none``. ``weight``: the factor of the term
    (0 or kind ``none``: inactive, no hooks, the call returns 0). Patterns match module
    names like ``optimizer.lr_multipliers`` (glob on the dotted name, or one of its
    components); one that matches no Linear layer is a ConfigError.

    For ``som`` a forward hook on each chosen layer keeps its inputs of the current
    training forward pass (flattened to ``[N, d]``; a layer called several times, e.g. a
    shared ALBERT block, contributes all its calls); :meth:`set_mask` drops padding
    positions; ``max_rows`` keeps every s-th row (s = ceil(N / max_rows)) to bound the
    cost; the inputs are detached by default (the term shapes the kernels only). Calling
    the object returns ``weight * sum_layers R_layer`` and forgets the captured inputs;
    ``values`` holds the last unweighted value per layer. :meth:`remove` detaches the hooks.

    A plain object, not an ``nn.Module``: it adds no parameters or state to the model.
    """

    def __init__(
        self,
        model: nn.Module,
        patterns: Sequence[str] | str = (),
        kind: str = "som",
        weight: float = 1.0,
        gamma: float = 10.0,
        lambda1: float = 100.0,
        lambda2: float = 1.0,
        max_rows: int | None = 4096,
        detach_inputs: bool = True,
        key: str = "model.orthogonality",
    ):
        if kind not in KINDS:
            raise ConfigError(f"{key}.kind", f"unknown regulariser {kind!r}; choose one of {list(KINDS)}")
        if not isinstance(weight, (int, float)) or weight < 0 or not math.isfinite(weight):
            raise ConfigError(f"{key}.weight", f"must be a number >= 0, got {weight!r}")
        if max_rows is not None and int(max_rows) < 2:
            raise ConfigError(f"{key}.max_rows", f"must be >= 2 or null, got {max_rows!r}")
        self.kind, self.weight = kind, float(weight)
        self.gamma, self.lambda1, self.lambda2 = float(gamma), float(lambda1), float(lambda2)
        self.max_rows = None if max_rows is None else int(max_rows)
        self.detach_inputs = detach_inputs
        self.values: dict[str, float] = {}
        self.layers: dict[str, nn.Linear] = {}
        self._inputs: dict[str, list[torch.Tensor]] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._mask: torch.Tensor | None = None
        if not self.active:
            return
        patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
        if not patterns:
            raise ConfigError(
                f"{key}.patterns", f"kind={kind!r} with weight {weight} needs at least one module pattern"
            )
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        for pattern in patterns:
            hits = [(n, m) for n, m in linears if _matches(pattern, n)]
            if not hits:
                raise ConfigError(f"{key}.patterns", f"{pattern!r} matches no Linear layer of the model")
            self.layers.update(hits)
        if kind == "som":
            for name, layer in self.layers.items():
                self._handles.append(layer.register_forward_hook(self._make_hook(name)))

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.weight > 0

    def _make_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not module.training or not torch.is_grad_enabled():
                return
            x = inputs[0]
            if self._mask is not None and x.shape[:-1] == self._mask.shape:
                x = x[self._mask]
            x = x.reshape(-1, x.shape[-1])
            self._inputs.setdefault(name, []).append(x.detach() if self.detach_inputs else x)

        return hook

    def set_mask(self, mask: torch.Tensor | None) -> None:
        """A bool mask (e.g. ``attention_mask`` ``[B, T]``) of the rows to keep in the next
        forward pass, applied to inputs whose leading shape equals the mask's."""
        self._mask = None if mask is None else mask.bool()

    def _rows(self, chunks: Iterable[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(list(chunks), 0)
        if self.max_rows is not None and x.shape[0] > self.max_rows:
            x = x[:: math.ceil(x.shape[0] / self.max_rows)]
        return x

    def penalties(self) -> dict[str, torch.Tensor]:
        """Unweighted penalty per chosen layer (SOM: from the inputs captured since the last call)."""
        out: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            w = kernel_of(layer)
            if self.kind == "soft":
                out[name] = soft_orthogonality(w)
            elif self.kind == "biggan":
                out[name] = biggan_orthogonality(w)
            elif name in self._inputs:
                x = self._rows(self._inputs[name]).to(w.dtype)
                out[name] = som_penalty(x, w, self.gamma, self.lambda1, self.lambda2)
        if self.kind == "som" and self.layers and not out:
            raise RuntimeError(
                "OrthogonalityPenalty(kind='som'): no inputs captured; call it after a training forward pass"
            )
        self._inputs.clear()
        return out

    def __call__(self) -> torch.Tensor:
        if not self.active:
            return torch.zeros(())
        per_layer = self.penalties()
        self.values = {k: float(v.detach()) for k, v in per_layer.items()}
        return self.weight * torch.stack(list(per_layer.values())).sum()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._inputs.clear()
