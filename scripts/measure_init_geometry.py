"""Post 3's measurable claim: a random matrix with i.i.d. zero-mean entries of variance 1/n is
nearly orthogonal, better as n grows.

For y = W x with W of shape [m, n] (m outputs, n inputs) drawn under each init law of
bertlab.nn.init, measures mean((W^T W - I)^2) (the n x n Gram matrix against the identity) for
n = 16 ... 1024, square (m = n) and tall (m = ratio * n), in ``--draws`` independent draws per
cell, and splits it into its two parts:

    mean((W^T W - I)^2) = diag / n + offdiag * (n - 1) / n
    diag    = mean((diag(W^T W) - 1)^2)         (the column norms)
    offdiag = mean over i != j of (W^T W)_ij^2   (the angles, times the norms)

and the mean squared cosine between distinct columns (the angles alone). Writes
init_geometry.md (mean ± std over draws per cell, the fitted log-log slope over n per draw, the
per-draw values, the check of the split above) and init_geometry.png into ``--out``.

    python scripts/measure_init_geometry.py [--out DIR] [--ratio 4] [--draws 3] [--seed 0]

Expected (normal entries, variance v): E[(W^TW)_ii] = m v, diag ~ (m v - 1)^2 + 2 m v^2,
offdiag ~ m v^2; so the offdiag part falls like 1/n for every law, the diag part only where
m v = 1 (dual; lecun and xavier when m = n), and the whole statistic falls like 1/n for every
law because the diagonal's share is weighted by 1/n. Draw d of a cell is the d-th matrix drawn
for it from one generator per shape (seeded ``seed`` for the square, ``seed + 1`` for the tall
case), in the order size, law, draw: ``--draws 3 --seed 0`` reproduces the 3-trial means of the
first version of this script.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import sys

import torch

from bertlab.nn.init import init_weight_
from bertlab.nn.orthogonality import gram_deviation, mean_sq_cosine
from bertlab.utils.atomic import atomic_write, atomic_write_text

LAWS = ("hf", "xavier", "lecun", "dual", "he", "orthogonal", "lecun_uniform")
STATS = ("full", "diag", "offdiag", "cos2")
STAT_TITLES = {
    "full": "mean((W^T W - I)^2)",
    "diag": "diagonal part, mean((diag(W^T W) - 1)^2)",
    "offdiag": "off-diagonal part, mean over i != j of (W^T W)_ij^2",
    "cos2": "mean squared cosine between distinct columns (angles alone)",
}


@torch.no_grad()
def parts(w: torch.Tensor) -> dict[str, float]:
    """The statistic and its parts for one kernel ``w`` ``[m, n]``, m >= n (the Gram side is the
    columns): keys ``STATS``."""
    n = w.shape[1]
    g = w.t() @ w
    d = torch.diagonal(g)
    return {
        "full": float(gram_deviation(w)),
        "diag": float((d - 1).pow(2).mean()),
        "offdiag": float((g.pow(2).sum() - d.pow(2).sum()) / (n * (n - 1))),
        "cos2": float(mean_sq_cosine(w)),
    }


def measure_draws(sizes, ratio: int, draws: int, seed: int = 0) -> dict[str, dict[str, list[list[float]]]]:
    """stat -> law -> per size, the list of the ``draws`` per-draw values."""
    gen = torch.Generator().manual_seed(seed)
    res: dict[str, dict[str, list[list[float]]]] = {s: {law: [] for law in LAWS} for s in STATS}
    for n in sizes:
        m = ratio * n
        for law in LAWS:
            cell: dict[str, list[float]] = {s: [] for s in STATS}
            for _ in range(draws):
                w = torch.empty(m, n, dtype=torch.float64)
                init_weight_(w, law, generator=gen)
                for s, v in parts(w).items():
                    cell[s].append(v)
            for s in STATS:
                res[s][law].append(cell[s])
    return res


def measure(sizes, ratio: int, trials: int, seed: int = 0) -> tuple[dict[str, list[float]], ...]:
    """(mean((W^TW - I)^2), mean((diag(W^TW) - 1)^2), mean squared cosine between distinct columns)
    per law and size, averaged over ``trials`` draws."""
    res = measure_draws(sizes, ratio, trials, seed)
    return tuple(
        {law: [sum(c) / len(c) for c in cells] for law, cells in res[s].items()} for s in ("full", "diag", "cos2")
    )


def slope(sizes, values) -> float:
    """Least-squares slope of log(value) against log(n)."""
    xs, ys = [math.log(n) for n in sizes], [math.log(max(v, 1e-300)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


ROUNDING = 1e-12  # a curve whose every value is below this (the orthogonal law) has no slope


def draw_slopes(sizes, cells: list[list[float]]) -> list[float]:
    """The log-log slope over n of each draw's curve (draw d = the d-th value of every cell);
    NaN for a curve at rounding level (shown as "-")."""
    if all(abs(v) < ROUNDING for c in cells for v in c):
        return [float("nan")] * len(cells[0])
    return [slope(sizes, [c[d] for c in cells]) for d in range(len(cells[0]))]


def mean_std(values: list[float], fmt: str) -> str:
    if not all(math.isfinite(v) for v in values):
        return "-"
    if len(values) < 2:
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} ± {format(statistics.stdev(values), fmt.lstrip('+'))}"


def split_error(sizes, res) -> float:
    """Largest relative gap, over every cell and draw, between the statistic and
    diag / n + offdiag * (n - 1) / n (rounding only; the orthogonal law's ~1e-33 cells skipped)."""
    worst = 0.0
    for law in LAWS:
        for n, full, diag, off in zip(sizes, res["full"][law], res["diag"][law], res["offdiag"][law]):
            for f, d, o in zip(full, diag, off):
                if f > 1e-20:
                    worst = max(worst, abs(f - (d / n + o * (n - 1) / n)) / f)
    return worst


def cell_table(sizes, cells_by_law, title: str) -> str:
    lines = [
        f"#### {title}",
        "",
        "| law | " + " | ".join(f"n={n}" for n in sizes) + " | slope over n, per draw |",
        "|" + "---|" * (len(sizes) + 2),
    ]
    for law, cells in cells_by_law.items():
        vals = " | ".join(mean_std(c, ".3g") for c in cells)
        lines.append(f"| {law} | {vals} | {mean_std(draw_slopes(sizes, cells), '+.3f')} |")
    return "\n".join(lines) + "\n"


def slope_table(sizes, shapes) -> str:
    lines = [
        "| shape | law | "
        + " | ".join(f"slope {s}" for s in STATS)
        + f" | diagonal's share of the statistic at n={sizes[-1]} |",
        "|" + "---|" * (len(STATS) + 3),
    ]
    n = sizes[-1]
    for shape, res in shapes:
        for law in LAWS:
            slopes = " | ".join(mean_std(draw_slopes(sizes, res[s][law]), "+.3f") for s in STATS)
            share = [
                d / n / f if f > 1e-20 else float("nan") for d, f in zip(res["diag"][law][-1], res["full"][law][-1])
            ]
            lines.append(f"| {shape} | {law} | {slopes} | {mean_std(share, '.3f')} |")
    return "\n".join(lines) + "\n"


def per_draw_table(sizes, shapes, show) -> str:
    idx = [sizes.index(n) for n in show]
    cols = [f"{s} n={sizes[i]}" for s in ("full", "diag", "offdiag") for i in idx]
    lines = [
        "| shape | law | draw | " + " | ".join(cols) + " | slope full | slope diag | slope offdiag |",
        "|" + "---|" * (len(cols) + 6),
    ]
    for shape, res in shapes:
        for law in LAWS:
            sl = {s: draw_slopes(sizes, res[s][law]) for s in ("full", "diag", "offdiag")}
            for d in range(len(res["full"][law][0])):
                vals = [format(res[s][law][i][d], ".4g") for s in ("full", "diag", "offdiag") for i in idx]
                sls = [mean_std([sl[s][d]], "+.3f") for s in ("full", "diag", "offdiag")]
                lines.append(f"| {shape} | {law} | {d + 1} | " + " | ".join(vals + sls) + " |")
    return "\n".join(lines) + "\n"


def report(sizes, ratio: int, draws: int, seed: int, square, tall, command: str) -> str:
    shapes = (("square", square), (f"tall m={ratio}n", tall))
    show = [n for n in (64, 1024) if n in sizes] or [sizes[0], sizes[-1]]
    out = [
        "# mean((W^T W - I)^2) for W [m, n] under each init law, per draw\n",
        f"Command: `{command}`. {draws} draws per cell (one matrix each), generator seed {seed} "
        f"(square) / {seed + 1} (tall m = {ratio} n). Cells: mean ± std over the draws (sample std); "
        "slopes: least-squares log-log slope over n of each draw's curve, mean ± std over draws.\n",
        "Split: mean((W^T W - I)^2) = diag / n + offdiag * (n - 1) / n, with diag = "
        "mean((diag(W^T W) - 1)^2) and offdiag = the mean squared off-diagonal entry; largest "
        f"relative gap between the two sides over every cell and draw: {split_error(sizes, square):.1e} "
        f"(square), {split_error(sizes, tall):.1e} (tall). Slopes of curves at rounding level "
        f"(every value below {ROUNDING:g}: the orthogonal law) are shown as -.\n",
        "## Slopes over n and the diagonal's share, per law\n",
        slope_table(sizes, shapes),
    ]
    for shape, res in shapes:
        out.append(f"## {shape}\n")
        for s in STATS:
            out.append(cell_table(sizes, res[s], STAT_TITLES[s]))
    out.append(f"## Per draw (n = {', '.join(map(str, show))}; slopes over all n)\n")
    out.append(per_draw_table(sizes, shapes, show))
    return "\n".join(out)


def plot(path: str, sizes, ratio: int, square, tall) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def mean_curve(cells):
        return [max(sum(c) / len(c), 1e-18) for c in cells]

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    for row, (res, shape) in enumerate(((square, "m = n"), (tall, f"m = {ratio} n"))):
        for ax, s in zip(axes[row], ("full", "diag", "offdiag")):
            for law, cells in res[s].items():
                ax.loglog(sizes, mean_curve(cells), marker="o", label=f"{law} ({slope(sizes, mean_curve(cells)):+.2f})")
            ax.loglog(sizes, [1 / n for n in sizes], "k--", lw=1, label="1/n")
            ax.set_xlabel("n (inputs)")
            ax.set_title(f"{s}, {shape}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="logs/init_geometry", help="folder for init_geometry.md and .png")
    ap.add_argument("--sizes", default="16,32,64,128,256,512,1024")
    ap.add_argument("--ratio", type=int, default=4, help="m = ratio * n for the tall case (m >= n, as in the post)")
    ap.add_argument("--draws", "--trials", dest="draws", type=int, default=3, help="matrices per cell (>= 1)")
    ap.add_argument("--seed", type=int, default=0, help="generator seed of the square case (tall: seed + 1)")
    ap.add_argument("--no-plot", action="store_true", help="write the table only")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.draws < 1 or len(sizes) < 2 or min(sizes) < 2:
        ap.error("--draws must be >= 1 and --sizes at least two sizes >= 2")
    square = measure_draws(sizes, 1, args.draws, args.seed)
    tall = measure_draws(sizes, args.ratio, args.draws, args.seed + 1)
    command = "python scripts/measure_init_geometry.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = report(sizes, args.ratio, args.draws, args.seed, square, tall, command.strip())
    md_path = os.path.join(args.out, "init_geometry.md")
    atomic_write_text(md_path, md)
    sys.stdout.write(md)
    if not args.no_plot:
        png = os.path.join(args.out, "init_geometry.png")
        plot(png, sizes, args.ratio, square, tall)
        print(f"wrote {md_path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
