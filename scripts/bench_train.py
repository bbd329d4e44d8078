#!/usr/bin/env python
"""Training throughput of the default CWS pipeline against a naive one, in one run.

Non-padding tokens per second of full training steps (forward, backward, Adam step) on the
SAME model and the same real training sentences, for:

  naive      fixed padding to max_len, full 21,128-token vocab, pytorch-crf
  +bucket    length-bucketed batches with dynamic padding (alone)
  +trim      vocabulary trimmed to the corpus (alone)
  +crf       bertlab's CRF instead of pytorch-crf (alone)
  bertlab    all of them (the default pipeline)
  softmax    the default pipeline with a softmax head (CRF-vs-softmax step cost)

With ``--precision 32-true,bf16-mixed`` it measures instead the default pipeline (the main
job's model) under each Lightning precision (``bf16-mixed``: CPU bf16 autocast around the
forward pass and loss, as Lightning runs it; the CRF loss itself in float32, nn/losses.py),
and prints each one's tokens/s and its ratio to the first (32-true) in the same run.

Usage: python scripts/bench_train.py [--steps 30] [--layers 2] [--threads 2] [--precision 32-true,bf16-mixed]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from bertlab.data.collate import pad_collate
from bertlab.data.cws_datamodule import CwsDataModule
from bertlab.data.samplers import BucketBatchSampler
from bertlab.nn.encoders import build_encoder
from bertlab.nn.heads import TorchCrfHead, build_tagging_head

ROOT = Path(__file__).resolve().parents[1]


def datamodule(trim: str, max_len: int, max_chars: int) -> CwsDataModule:
    d = ROOT / "data/cws"
    dm = CwsDataModule(
        train_files=[str(d / f"peoples_daily_1998/cv-{i}-filter_test.txt.xz") for i in range(1, 6)],
        test_raw_file=str(d / "pku_sighan2005/pku_test.utf8.xz"),
        test_gold_file=str(d / "pku_sighan2005/pku_test_gold.utf8.xz"),
        train_words_file=str(d / "pku_sighan2005/pku_training_words.utf8.xz"),
        vocab_file=str(ROOT / "data/vocab/bert-base-chinese/vocab.txt"),
        max_len=max_len,
        max_train_chars=max_chars,
        max_eval_sentences=10,
        trim_vocab=trim,
    )
    dm.setup("fit")
    return dm


def batches(dm: CwsDataModule, bucket: bool, batch_size: int, max_len: int, n: int, seed: int):
    feats = dm.features["train"]
    if bucket:
        sampler = BucketBatchSampler([len(f["input_ids"]) for f in feats], batch_size, seed=seed)
        idx_batches = list(sampler)[:n]
        return [pad_collate([feats[i] for i in b], pad_id=dm.tokenizer.pad_id) for b in idx_batches]
    order = list(range(len(feats)))
    random.Random(seed).shuffle(order)
    out = []
    for k in range(n):
        b = pad_collate([feats[i] for i in order[k * batch_size : (k + 1) * batch_size]], pad_id=dm.tokenizer.pad_id)
        pad = max_len - b["input_ids"].size(1)  # the naive pipeline pads every batch to max_len
        if pad > 0:
            b = {k2: nn.functional.pad(v, (0, pad)) if v.dim() == 2 else v for k2, v in b.items()}
        out.append(b)
    return out


_AUTOCAST = {"32-true": None, "bf16-mixed": torch.bfloat16}


def measure(name, dm, head_kind, bucket, args, results, precision="32-true"):
    torch.manual_seed(0)
    enc_cfg = {
        "model_type": "bert",
        "pretrained": None,
        "vocab_file": str(ROOT / "data/vocab/bert-base-chinese/vocab.txt"),
        "config_file": str(ROOT / "data/vocab/bert-base-chinese/bert_config.json"),
        "num_layers": args.layers,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        "max_position_embeddings": 512,
    }
    encoder, _ = build_encoder(enc_cfg, keep_ids=dm.keep_ids)
    emission = nn.Linear(256, 4)
    head = TorchCrfHead(4) if head_kind == "torchcrf" else build_tagging_head({"type": head_kind}, 4)[1]
    params = [*encoder.parameters(), *emission.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-6)
    data = batches(dm, bucket, args.batch_size, args.max_len, args.steps + args.warmup, args.seed)
    times, tokens = [], []
    if precision not in _AUTOCAST:
        raise SystemExit(f"--precision: {precision!r} is not one of {', '.join(_AUTOCAST)}")
    dtype = _AUTOCAST[precision]
    for i, b in enumerate(data):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            hidden = encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"].long()).last_hidden_state
            loss = head.nll(emission(hidden), b["labels"], b["attention_mask"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(int(b["attention_mask"].sum()))
    tps = sum(tokens) / sum(times)
    padded = sum(b["input_ids"].numel() for b in data[args.warmup :])
    results[name] = {
        "tokens_per_s": tps,
        "ms_per_step": 1000 * statistics.median(times),
        "ms_per_1k_tokens": 1000 * sum(times) / sum(tokens) * 1000,
        "padding": 1 - sum(tokens) / padded,
        "vocab": encoder.config.vocab_size,
    }
    print(
        f"  {name:9s} {tps:9.0f} tok/s  padding {results[name]['padding']:.1%}  vocab {encoder.config.vocab_size}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--max-chars", type=int, default=400_000, help="training subset read for the batches")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default=None, help="e.g. 32-true,bf16-mixed: the main job's model per precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"bench_train: {args.layers} layers x 256, batch {args.batch_size}, max_len {args.max_len}, "
        f"{args.steps} timed steps, {args.threads} threads"
    )
    if args.precision:
        precision_table(args)
        return
    full = datamodule("none", args.max_len, args.max_chars)
    trimmed = datamodule("corpus", args.max_len, args.max_chars)
    res: dict[str, dict] = {}
    measure("naive", full, "torchcrf", False, args, res)
    measure("+bucket", full, "torchcrf", True, args, res)
    measure("+trim", trimmed, "torchcrf", False, args, res)
    measure("+crf", full, "crf", False, args, res)
    measure("bertlab", trimmed, "crf", True, args, res)
    measure("softmax", trimmed, "softmax", True, args, res)
    base = res["naive"]["tokens_per_s"]
    print()
    print("| pipeline | non-padding tokens/s | x naive | padding | vocab | ms / 1k tokens |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        print(
            f"| {name} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f} | {r['padding']:.1%} | "
            f"{r['vocab']} | {r['ms_per_1k_tokens']:.1f} |"
        )
    ratio = res["bertlab"]["ms_per_1k_tokens"] / res["softmax"]["ms_per_1k_tokens"]
    print(f"\nCRF-head step cost / softmax-head step cost (same batches): {ratio:.3f}")


def precision_table(args) -> None:
    from bertlab.utils.precision import cpu_bf16_flags

    print(f"CPU bf16 flags: {' '.join(cpu_bf16_flags()) or 'none'}")
    dm = datamodule("corpus", args.max_len, args.max_chars)
    res: dict[str, dict] = {}
    names = [p.strip() for p in args.precision.split(",") if p.strip()]
    for p in names:
        measure(p, dm, "crf", True, args, res, precision=p)
    base = res[names[0]]["tokens_per_s"]
    print()
    print(f"| precision | non-padding tokens/s | x {names[0]} | ms / step (median) |")
    print("|---|---:|---:|---:|")
    for name, r in res.items():
        print(f"| {name} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f} | {r['ms_per_step']:.0f} |")


if __name__ == "__main__":
    main()
