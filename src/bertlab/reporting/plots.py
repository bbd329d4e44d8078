"""PNG plots people would rather look at than read: the one module that imports matplotlib
(the Agg backend, chosen here once); the tables (``bertlab.reporting.*``) and the callbacks
draw through it. Every ``*_png`` function saves atomically and returns the open figure:
:func:`close` it (or :func:`send_figure` it to the loggers, which closes it)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bertlab.utils.atomic import atomic_write_bytes  # noqa: E402


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """``fig.savefig(path)``, atomically (a reader never sees a half-written image)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=os.path.splitext(os.fspath(path))[1].lstrip(".") or "png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def close(fig) -> None:
    """Free a figure's memory (pyplot keeps every open figure)."""
    plt.close(fig)


def heatmap_png(mat: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: str, title: str = ""):
    """A diverging heatmap with the value in every cell; returns the (open) figure."""
    mat = np.asarray(mat, dtype=float)
    lim = float(np.abs(mat).max()) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(cols), 0.8 + 0.7 * len(rows)))
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_xticks(range(len(cols)), labels=list(cols))
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    if len(rows) * len(cols) <= 400:
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{mat[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(mat[i, j]) > 0.6 * lim else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def curves_png(
    steps: Sequence[int] | Mapping[str, Sequence[int]],
    series: Mapping[str, Sequence[float]],
    path: str,
    title: str = "",
    ylabel: str = "",
    logy: bool = False,
):
    """One line per named series over training steps (``steps``: shared by every series, or a
    dict giving each series its own); returns the (open) figure."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        xs = steps[name] if isinstance(steps, dict) else steps
        ax.plot(list(xs), list(values), label=name, linewidth=1.2, marker="o" if len(values) <= 12 else None)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    if 0 < len(series) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def arm_curves_png(
    curves: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
    path: str,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "",
):
    """Learning curves of an arms x seeds comparison: ``curves[arm][seed] = [(x, y), ...]``. Each
    seed is a thin line, each arm's mean over its seeds (at the x every seed reached) a thick
    one in the same colour; returns the (open) figure."""
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arm, seeds) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        for points in seeds.values():
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, color=colour, linewidth=0.8, alpha=0.35)
        common = sorted(set.intersection(*(set(x for x, _ in pts) for pts in seeds.values()))) if seeds else []
        if common:
            by_seed = [dict(pts) for pts in seeds.values()]
            mean = [float(np.mean([d[x] for d in by_seed])) for x in common]
            ax.plot(common, mean, color=colour, linewidth=2.2, label=f"{arm} (mean of {len(by_seed)})")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def best_final_bars_png(
    labels: Sequence[str],
    best: Sequence[float],
    final: Sequence[float],
    failed: Sequence[bool],
    path: str | os.PathLike,
    ylabel: str = "",
    title: str = "",
):
    """Two bars per item, best and final (NaN: no bar), the failed items marked "failed";
    returns the (open) figure."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * n + 1.5), 4.0))
    xs = list(range(n))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], list(best), width, label="best", color="#4c72b0")
    ax.bar([x + width / 2 for x in xs], list(final), width, label="final", color="#dd8452")
    shown = [v for v in [*best, *final] if not math.isnan(v)]
    top = max(shown, default=1.0)
    bottom = min(0.0, min(shown, default=0.0))
    for x, bad in zip(xs, failed):
        if bad:
            ax.text(
                x,
                bottom + 0.02 * (top - bottom or 1.0),
                "failed",
                ha="center",
                va="bottom",
                color="#c44e52",
                fontsize=9,
                rotation=90,
            )
    ax.set_xticks(xs, labels=list(labels), fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def send_figure(trainer, key: str, fig, png_path: str) -> None:
    """A saved figure to the run's loggers (TensorBoard figure, W&B image), then closed."""
    for logger in trainer.loggers:
        exp = getattr(logger, "experiment", None)
        if exp is not None and hasattr(exp, "add_figure"):  # TensorBoard
            exp.add_figure(key, fig, global_step=trainer.global_step)
        elif hasattr(logger, "log_image"):  # W&B
            logger.log_image(key=key, images=[png_path], step=trainer.global_step)
    plt.close(fig)
