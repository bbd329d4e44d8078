"""Post 3's measurable claim: a random matrix with i.i.d. zero-mean entries of variance 1/n is
nearly orthogonal, better as n grows.

For y = W x with W of shape [m, n] (m outputs, n inputs) drawn under each init law of
bertlab.nn.init, prints mean((W^T W - I)^2) (the n x n Gram matrix against the identity),
averaged over trials, for n = 16 ... 1024, square (m = n) and tall (m = ratio * n); fits
the log-log slope over n (about -1 where the law makes W^T W ~ I, about 0 where it does not)
and saves the curves as a PNG. The same for the diagonal alone (the column norms), which is
what tells the laws apart.

    python scripts/measure_init_geometry.py [--out DIR] [--ratio 4] [--trials 3]

Expected (normal entries, variance v): E[(W^TW)_ii] = m v and the statistic is about
(m v - 1)^2 + (n + 1) m v^2 / n; for v = 1/m (dual; lecun and xavier when m = n) that is
(n + 1) / (m n) ~ 1/m.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

from bertlab.nn.init import init_weight_
from bertlab.nn.orthogonality import gram_deviation, kernel_statistics

LAWS = ("hf", "xavier", "lecun", "dual", "he", "orthogonal", "lecun_uniform")


def measure(sizes, ratio: int, trials: int, seed: int = 0) -> tuple[dict[str, list[float]], ...]:
    """(mean((W^TW - I)^2), mean((diag(W^TW) - 1)^2), mean squared cosine between distinct columns)
    per law and size, averaged over trials (m >= n here, so the Gram side is always the columns)."""
    gen = torch.Generator().manual_seed(seed)
    full: dict[str, list[float]] = {law: [] for law in LAWS}
    diag: dict[str, list[float]] = {law: [] for law in LAWS}
    cos2: dict[str, list[float]] = {law: [] for law in LAWS}
    for n in sizes:
        m = ratio * n
        for law in LAWS:
            vals, dvals, cvals = [], [], []
            for _ in range(trials):
                w = torch.empty(m, n, dtype=torch.float64)
                init_weight_(w, law, generator=gen)
                vals.append(float(gram_deviation(w)))
                st = kernel_statistics(w)
                dvals.append(float(st["gram_diag"]))
                cvals.append(float(st["gram_offdiag_cos2"]))
            full[law].append(sum(vals) / len(vals))
            diag[law].append(sum(dvals) / len(dvals))
            cos2[law].append(sum(cvals) / len(cvals))
    return full, diag, cos2


def slope(sizes, values) -> float:
    """Least-squares slope of log(value) against log(n)."""
    xs, ys = [math.log(n) for n in sizes], [math.log(max(v, 1e-300)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def table(title: str, sizes, res) -> str:
    head = "| law | " + " | ".join(f"n={n}" for n in sizes) + " | slope |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(sizes) + 2)]
    for law, vals in res.items():
        lines.append(f"| {law} | " + " | ".join(f"{v:.3g}" for v in vals) + f" | {slope(sizes, vals):+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="logs/init_geometry", help="folder for init_geometry.md and .png")
    ap.add_argument("--sizes", default="16,32,64,128,256,512,1024")
    ap.add_argument("--ratio", type=int, default=4, help="m = ratio * n for the tall case (m >= n, as in the post)")
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    os.makedirs(args.out, exist_ok=True)
    square, square_diag, square_cos2 = measure(sizes, 1, args.trials)
    tall, tall_diag, tall_cos2 = measure(sizes, args.ratio, args.trials, seed=1)
    md = (
        "# mean((W^T W - I)^2) for W [m, n] under each init law\n\n"
        + table("square, m = n", sizes, square)
        + "\n"
        + table(f"tall, m = {args.ratio} n", sizes, tall)
        + "\n"
        + "The mean over all n^2 entries weighs the n diagonal entries (the column norms) by 1/n, so it\n"
        + "falls like 1/n even for a law of the wrong scale; the diagonal alone, mean((diag(W^T W) - 1)^2),\n"
        + "separates the laws: it vanishes only where m * variance = 1.\n\n"
        + table("diagonal only, square", sizes, square_diag)
        + "\n"
        + table(f"diagonal only, tall m = {args.ratio} n", sizes, tall_diag)
        + "\n"
        + "The off-diagonal part on column-normalised kernels, the mean squared cosine between distinct\n"
        + "columns, measures the angles alone (independent of the scale; about 1/m for random columns).\n\n"
        + table("off-diagonal, mean squared cosine, square", sizes, square_cos2)
        + "\n"
        + table(f"off-diagonal, mean squared cosine, tall m = {args.ratio} n", sizes, tall_cos2)
    )
    with open(os.path.join(args.out, "init_geometry.md"), "w", encoding="utf-8") as f:
        f.write(md)
    sys.stdout.write(md)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.4))
    axes = axes.ravel()
    panels = (
        (axes[0], square, "mean((W^TW - I)^2), m = n"),
        (axes[1], tall, f"mean((W^TW - I)^2), m = {args.ratio} n"),
        (axes[2], square_diag, "diagonal only, m = n"),
        (axes[3], tall_diag, f"diagonal only, m = {args.ratio} n"),
    )
    for ax, res, title in panels:
        for law, vals in res.items():
            ax.loglog(sizes, [max(v, 1e-18) for v in vals], marker="o", label=f"{law} ({slope(sizes, vals):+.2f})")
        ax.loglog(sizes, [1 / n for n in sizes], "k--", lw=1, label="1/n")
        ax.set_xlabel("n (inputs)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    png = os.path.join(args.out, "init_geometry.png")
    fig.savefig(png, dpi=120)
    print(f"wrote {os.path.join(args.out, 'init_geometry.md')} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
