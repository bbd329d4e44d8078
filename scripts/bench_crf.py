"""Benchmark bertlab's CRF against pytorch-crf (torchcrf) on CPU (or ``--device cuda``).

For each (K tags, T steps) setting, batch B, prefix masks with lengths drawn from U[T/2, T]:
median wall time of the NLL forward+backward (gradients to emissions and all CRF
parameters) and of Viterbi decoding, for both implementations with identical parameters
(include_start_end=True, pytorch-crf's parameters copied from ours), their ratio, the largest
absolute difference of the log-likelihoods and the fraction of identical decoded paths.

The two implementations are timed alternately, repeat by repeat, so that a noisy machine
slows both alike.

    .venv/bin/python scripts/bench_crf.py [--repeats 30] [--batch 32] [--threads 2] [--json out.json]

``--json``: also write the rows (one dict per setting) as JSON (``python -m bertlab.gpu_check`` reads it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bertlab.nn.crf import CRF

try:
    import torchcrf
except ImportError as err:  # pragma: no cover - a dev dependency
    raise SystemExit("pytorch-crf is missing: pip install -e '.[dev]'") from err

SETTINGS = ((4, 128), (31, 128), (4, 512))


def _timed(fn) -> float:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # CUDA kernels run asynchronously: time them to completion
    return (time.perf_counter() - t0) * 1e3


def bench_setting(
    K: int, T: int, batch: int, repeats: int, warmup: int, route: str, seed: int, device: str = "cpu"
) -> dict:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the transitions' init draws from the global generator
    ours = CRF(K, include_start_end=True)
    ours.route = route
    with torch.no_grad():
        ours.start_transitions.normal_(generator=g)
        ours.end_transitions.normal_(generator=g)
    ref = torchcrf.CRF(K, batch_first=True)
    with torch.no_grad():
        ref.transitions.copy_(ours.transitions)
        ref.start_transitions.copy_(ours.start_transitions)
        ref.end_transitions.copy_(ours.end_transitions)

    ours.to(device)
    ref.to(device)
    emissions = (3.0 * torch.randn(batch, T, K, generator=g)).to(device).requires_grad_()
    tags = torch.randint(K, (batch, T), generator=g).to(device)
    lengths = torch.randint(T // 2, T + 1, (batch,), generator=g)
    lengths[0] = T
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(device)

    def nll_ref():
        emissions.grad = None
        (-ref(emissions, tags, mask, reduction="sum")).backward()

    def nll_ours():
        emissions.grad = None
        ours.nll(emissions, tags, mask, reduction="sum").backward()

    def dec_ref():
        ref.decode(emissions.detach(), mask)

    def dec_ours():
        ours.decode(emissions.detach(), mask)

    times = {name: [] for name in ("nll_ref", "nll_ours", "dec_ref", "dec_ours")}
    fns = {"nll_ref": nll_ref, "nll_ours": nll_ours, "dec_ref": dec_ref, "dec_ours": dec_ours}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    for r in range(repeats):
        order = ("ref", "ours") if r % 2 == 0 else ("ours", "ref")
        for task in ("nll", "dec"):
            for who in order:
                times[f"{task}_{who}"].append(_timed(fns[f"{task}_{who}"]))
    for p in (*ours.parameters(), *ref.parameters()):
        p.grad = None

    with torch.no_grad():
        ll_ours = -ours.nll(emissions, tags, mask, reduction="none")
        ll_ref = ref(emissions, tags, mask, reduction="none")
        paths_ours = ours.decode(emissions, mask)
        paths_ref = ref.decode(emissions, mask)
    same = sum(paths_ours[b, : int(lengths[b])].tolist() == paths_ref[b] for b in range(batch))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "K": K,
        "T": T,
        **med,
        "ll_diff": float((ll_ours - ll_ref).abs().max()),
        "ll_rel": float(((ll_ours - ll_ref).abs() / ll_ref.abs()).max()),
        "same": same / batch,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed repeats per measurement (median reported)")
    ap.add_argument("--batch", type=int, default=32, help="batch size B")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs per measurement")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--route", default="auto", choices=("auto", "loop", "scan"), help="bertlab CRF route")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, "
        f"median of {args.repeats} (after {args.warmup} warm-up), route={args.route}, include_start_end=True"
    )
    head = (
        f"{'K':>3} {'T':>4} | {'NLL f+b ms: torchcrf':>20} {'bertlab':>8} {'speed-up':>8} | "
        f"{'decode ms: torchcrf':>19} {'bertlab':>8} {'speed-up':>8} | {'max|dLL|':>9} {'rel':>8} {'same paths':>10}"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for K, T in SETTINGS:
        r = bench_setting(K, T, args.batch, args.repeats, args.warmup, args.route, args.seed, args.device)
        print(
            f"{K:>3} {T:>4} | {r['nll_ref']:>20.2f} {r['nll_ours']:>8.2f} {r['nll_ref'] / r['nll_ours']:>7.1f}x | "
            f"{r['dec_ref']:>19.2f} {r['dec_ours']:>8.2f} {r['dec_ref'] / r['dec_ours']:>7.1f}x | "
            f"{r['ll_diff']:>9.2e} {r['ll_rel']:>8.1e} {r['same']:>10.3f}",
            flush=True,
        )
        rows.append(r)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
