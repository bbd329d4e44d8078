#!/usr/bin/env python
"""Tokens/s of conditional-LM generation with and without the key/value cache, in one run:

    python scripts/bench_generate.py [--ckpt runs/.../best-*.ckpt] [--size tiny|small]
                                     [--n 8] [--max-len 126] [--threads 2] [--repeats 3]

The SAME model (a cond_gen checkpoint, or without --ckpt a fresh model of experiment=cond_gen:
``small`` = the experiment's own 2-layer width-256 encoder, ``tiny`` = 1 layer of width 32)
generates ``--n`` texts per label, all rows in one batch, once with the cache (each new token
runs the encoder at one position) and once without (the whole prefix re-encoded every step).
By default every text is exactly ``--max-len`` tokens long ([SEP] banned, fixed work, and
the uncached worst case grows with the length); ``--stop-at-sep`` lets texts end at [SEP]
as in real use (an untrained model's lengths are then arbitrary). Speed does not depend on
training, so a fresh model measures the same thing as a trained one of the same size.

Prints JSON: generated tokens, best-of-``--repeats`` seconds and tokens/s of each mode, the
ratio cached/uncached, and ``greedy_identical``: whether greedy decoding gives the same
tokens with and without the cache (the timed runs are greedy unless ``--strategy`` says
otherwise; then one extra greedy pair is run for the check). Exit status 1 when they differ.
CPU only (the model is loaded on the CPU; ``--threads`` torch threads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch

SIZES = {
    "tiny": [
        "encoder.num_layers=1",
        "encoder.hidden_size=32",
        "encoder.num_attention_heads=2",
        "encoder.intermediate_size=64",
    ],
    "small": [],  # experiment=cond_gen as it is: 2 layers, width 256, 4 heads, FFN 1024
}


def fresh_model(size: str, overrides: list[str]) -> tuple[Any, Any]:
    """(model, datamodule) of a freshly initialised experiment=cond_gen model."""
    import hydra
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bertlab.nn.encoders import resolve_vocab_file
    from bertlab.utils.hydra_utils import register_resolvers, repo_root

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(repo_root(), "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=cond_gen", "paths.output_dir=/tmp", *SIZES[size], *overrides])
    GlobalHydra.instance().clear()
    torch.manual_seed(int(cfg.seed) if cfg.get("seed") is not None else 0)
    dm = hydra.utils.instantiate(cfg.data, vocab_file=resolve_vocab_file(cfg.encoder), _convert_="all")
    dm.setup("fit")
    model = hydra.utils.instantiate(cfg.model, **dm.model_kwargs(), _recursive_=False)
    return model, dm


def time_generation(
    model: Any, labels: list[int], use_cache: bool, repeats: int, **kw: Any
) -> tuple[list[list[int]], float]:
    """(token ids, best wall seconds over ``repeats`` runs)."""
    best, ids = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = model.generate_ids(labels, use_cache=use_cache, **kw)
        best = min(best, time.perf_counter() - t0)
    return ids, best


def bench(
    model: Any,
    n: int = 8,
    max_len: int = 126,
    repeats: int = 3,
    strategy: str = "greedy",
    k: int = 5,
    stop_at_sep: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    model.eval()
    num_labels = int(model.hparams.num_labels)
    labels = [lab for lab in range(num_labels) for _ in range(n)]
    max_len = min(int(max_len), model.encoder.config.max_position_embeddings - 1)
    kw = {"strategy": strategy, "k": k, "max_len": max_len, "seed": seed, "stop_at_sep": stop_at_sep}
    model.generate_ids(labels[:2], use_cache=True, **{**kw, "max_len": min(4, max_len)})  # warm-up
    model.generate_ids(labels[:2], use_cache=False, **{**kw, "max_len": min(4, max_len)})
    out: dict[str, Any] = {}
    ids = {}
    for name, use_cache in (("cached", True), ("uncached", False)):
        ids[name], sec = time_generation(model, labels, use_cache, repeats, **kw)
        # every row ends with [SEP] or at max_len; a [SEP] costs a step too
        tokens = sum(len(r) + (len(r) < max_len) for r in ids[name])
        out[name] = {"seconds": sec, "tokens": tokens, "tokens_per_s": tokens / sec}
    out["ratio_cached_over_uncached"] = out["cached"]["tokens_per_s"] / out["uncached"]["tokens_per_s"]
    out["sampled_identical"] = ids["cached"] == ids["uncached"]
    if strategy == "greedy":
        greedy = ids
    else:
        gk = {**kw, "strategy": "greedy"}
        greedy = {
            "cached": model.generate_ids(labels, use_cache=True, **gk),
            "uncached": model.generate_ids(labels, use_cache=False, **gk),
        }
    out["greedy_identical"] = greedy["cached"] == greedy["uncached"]
    out["mean_text_tokens"] = sum(map(len, ids["cached"])) / len(labels)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=None, help="a cond_gen checkpoint (default: a fresh model)")
    ap.add_argument("--size", choices=sorted(SIZES), default="small", help="fresh model size (without --ckpt)")
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        help="config override for the fresh model (e.g. data.max_train_chars=20000)",
    )
    ap.add_argument("--n", type=int, default=8, help="texts per label, all generated in one batch")
    ap.add_argument("--max-len", type=int, default=126, help="new tokens per text")
    ap.add_argument("--strategy", default="greedy", choices=["greedy", "temperature", "topk", "topp", "beam"])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--stop-at-sep", action="store_true", help="texts end at [SEP] (natural lengths)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per mode; the best counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args(argv)
    if args.n < 1 or args.max_len < 1 or args.repeats < 1:
        ap.error(f"--n, --max-len and --repeats must be >= 1, got {args.n}, {args.max_len}, {args.repeats}")
    torch.set_num_threads(args.threads)
    if args.ckpt:
        from bertlab.generate import load_generator
        from bertlab.utils.errors import CheckpointError

        try:
            model, _ = load_generator(args.ckpt)
        except (CheckpointError, FileNotFoundError) as err:
            print(f"bench_generate: error: {err}", file=sys.stderr)
            return 2
        source = args.ckpt
    else:
        model, _ = fresh_model(args.size, args.override)
        source = f"fresh {args.size} (experiment=cond_gen{' ' + ' '.join(args.override) if args.override else ''})"
    enc = model.encoder.config
    result = {
        "model": source,
        "layers": enc.num_hidden_layers,
        "hidden": enc.hidden_size,
        "vocab": model.encoder.get_input_embeddings().num_embeddings,
        "conditional": bool(model.hparams.conditional),
        "rows": args.n * int(model.hparams.num_labels),
        "max_len": args.max_len,
        "strategy": args.strategy,
        "stop_at_sep": args.stop_at_sep,
        "threads": args.threads,
        "device": "cpu",
    }
    result.update(
        bench(
            model,
            n=args.n,
            max_len=args.max_len,
            repeats=args.repeats,
            strategy=args.strategy,
            k=args.k,
            stop_at_sep=args.stop_at_sep,
        )
    )
    text = json.dumps(result, indent=2)
    print(text)
    print(
        f"cached {result['cached']['tokens_per_s']:.1f} tokens/s, uncached {result['uncached']['tokens_per_s']:.1f} "
        f"tokens/s, ratio {result['ratio_cached_over_uncached']:.2f}x; greedy tokens identical: "
        f"{result['greedy_identical']}",
        file=sys.stderr,
    )
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0 if result["greedy_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
