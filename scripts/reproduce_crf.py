#!/usr/bin/env python
"""Reproduce the CRF post's layer-1 table (kexue.fm 7196) in one command.

Runs the rows of conf/experiment/crf_layer1/ (CRF-1, CRF-2, CRF-3, Softmax, MEMM) as one
Hydra multirun (a sweep over the row files, never a cross product), then writes
``crf_layer1.md`` into the sweep folder (and prints it):

* per row: main lr, head lr, validation F1 after epoch 1 and best (epoch), the PKU test F1
  of the best-validation checkpoint, seconds of training;
* for the rows with transitions: max |transitions - init| next to head lr x optimizer
  steps (under Adam a weight moves at most about lr per step);
* the learned matrices of CRF-1 (x1) and CRF-2 (x10) side by side.

    python scripts/reproduce_crf.py [--rows crf1,crf2,...] [--out DIR] [extra overrides ...]
    python scripts/reproduce_crf.py --claim [--out DIR]   # main claim: lr 1e-5, CRF x1/x100/x1000, pretrained
    python scripts/reproduce_crf.py --report-only DIR     # table of an existing sweep

The post's numbers (BERT-base layer 1, test F1 epoch 1 / best): CRF-1 0.914 / 0.925,
CRF-2 0.929 / 0.930, CRF-3 0.673 / 0.747, Softmax 0.899 / 0.907.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bertlab.reporting.multirun import load_multirun

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("crf1", "crf2", "crf3", "softmax", "memm")
# moves a BMES tagging can never make (from, to)
IMPOSSIBLE = (("s", "m"), ("s", "e"), ("b", "s"), ("b", "b"), ("m", "s"), ("m", "b"), ("e", "m"), ("e", "e"))
POST = {"CRF-1": (0.914, 0.925), "CRF-2": (0.929, 0.930), "CRF-3": (0.673, 0.747), "Softmax": (0.899, 0.907)}


def read_matrix(path: Path) -> tuple[list[str], list[list[float]]]:
    rows = list(csv.reader(open(path, encoding="utf-8")))
    return rows[0][1:], [[float(x) for x in r[1:]] for r in rows[1:]]


def transition_files(job: Path) -> list[Path]:
    return sorted((job / "transitions").glob("step*.csv"))


def fmt(x, digits=4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def job_row(job) -> dict:
    cfg = yaml.safe_load(open(job.path / ".hydra" / "config.yaml", encoding="utf-8"))
    head = cfg["head"]["type"]
    lr = float(cfg["optimizer"]["lr"])
    mult = float((cfg["optimizer"].get("lr_multipliers") or {}).get(head, 1.0))
    vals = [(int(r["epoch"]), r["val/f1"]) for r in job.history if "val/f1" in r and "epoch" in r]
    steps = max((int(r["step"]) for r in job.history if "step" in r), default=0)
    epoch1 = next((v for e, v in reversed(vals) if e == 0), None)  # the last validation of epoch 1
    best = max(vals, key=lambda ev: ev[1]) if vals else None
    m = job.metrics or {}
    name = str(cfg.get("row") or job.name)
    if "${" in name:  # an interpolated label (config.yaml keeps interpolations unresolved)
        name = f"{head.upper()} x{mult:g}"
    row = {
        "row": name,
        "head": head,
        "lr": lr,
        "head_lr": lr * mult if head != "softmax" else None,
        "val_epoch1": epoch1,
        "val_best": best[1] if best else None,
        "best_epoch": best[0] + 1 if best else None,
        "test_f1": (m.get("test") or {}).get("f1"),
        "seconds": m.get("wall_seconds"),
        "steps": steps,
        "ok": job.ok,
        "path": job.path,
    }
    files = transition_files(job.path)
    if len(files) >= 2:
        names, init = read_matrix(files[0])
        _, last = read_matrix(files[-1])
        row["names"], row["init"], row["last"] = names, init, last
        row["moved"] = max(abs(a - b) for ra, rb in zip(init, last) for a, b in zip(ra, rb))
        if names == ["s", "b", "m", "e"]:  # BMES: how many of the 8 impossible moves score < 0
            count = lambda m: sum(m[names.index(a)][names.index(b)] < 0 for a, b in IMPOSSIBLE)  # noqa: E731
            row["impossible_neg"] = f"{count(last)} (init {count(init)})"
    return row


def render(rows: list[dict], sweep_dir: Path) -> str:
    out = [
        f"Sweep folder: `{sweep_dir}`",
        "",
        "| run | head | main lr | head lr | val F1 epoch 1 | val F1 best (epoch) | test F1 (best val ckpt) "
        "| post test F1 epoch 1 / best | max abs(trans - init) | head lr x steps | impossible moves < 0 | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["ok"]:
            out.append(f"| {r['row']} | {r['head']} | {r['lr']:g} | - | FAILED | | | | | | | |")
            continue
        post = POST.get(r["row"])
        post_s = "-" if post is None else f"{post[0]:.3f} / {post[1]:.3f}"
        head_lr = "-" if r["head_lr"] is None else f"{r['head_lr']:g}"
        budget = "-" if r["head_lr"] is None else f"{r['head_lr'] * r['steps']:.3g}"
        out.append(
            f"| {r['row']} | {r['head']} | {r['lr']:g} | {head_lr} | {fmt(r['val_epoch1'])} "
            f"| {fmt(r['val_best'])} ({r['best_epoch']}) | {fmt(r['test_f1'])} | {post_s} "
            f"| {fmt(r.get('moved'), 3)} | {budget} | {r.get('impossible_neg', '-')} | {fmt(r['seconds'], 0)} |"
        )
    mats = [r for r in rows if "last" in r][:3]
    if len(mats) >= 2:
        names = mats[0]["names"]
        out += [
            "",
            "Learned transitions (rows from, columns to): " + " | ".join(r["row"] for r in mats),
            "",
            "| from | " + " | | ".join(" | ".join(f"{r['row']} to {n}" for n in names) for r in mats) + " |",
            "|---|" + "---|" * (len(names) * len(mats) + len(mats) - 1),
        ]
        for i, n in enumerate(names):
            out.append(f"| {n} | " + " | | ".join(" | ".join(f"{x:.3f}" for x in r["last"][i]) for r in mats) + " |")
    return "\n".join(out) + "\n"


def report(sweep_dir: Path) -> str:
    _, jobs = load_multirun(sweep_dir)
    md = render([job_row(j) for j in jobs], sweep_dir)
    (sweep_dir / "crf_layer1.md").write_text(md, encoding="utf-8")
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated row files of conf/experiment/crf_layer1/")
    ap.add_argument(
        "--claim",
        action="store_true",
        help="instead: the post's main claim, experiment=crf_lr_claim with CRF x1, x100, x1000 at lr 1e-5",
    )
    ap.add_argument("--out", default=None, help="sweep folder (default: logs/crf_layer1/<time>)")
    ap.add_argument("--report-only", default=None, metavar="DIR", help="only tabulate an existing sweep folder")
    args, extra = ap.parse_known_args(argv)
    if args.report_only:
        sys.stdout.write(report(Path(args.report_only)))
        return 0
    out = Path(args.out or ROOT / "logs" / "crf_layer1" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    if args.claim:
        sweep = ["experiment=crf_lr_claim", "optimizer.lr_multipliers.crf=1,100,1000"]
    else:
        sweep = ["experiment=" + ",".join(f"crf_layer1/{r}" for r in args.rows.split(","))]
    cmd = [sys.executable, "-m", "bertlab.train", "-m", *sweep, f"hydra.sweep.dir={out}", *extra]
    print("running:", " ".join(cmd), flush=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
    }
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if not (out / "multirun.yaml").is_file():
        print(f"the sweep did not start (exit {rc})", file=sys.stderr)
        return rc or 2
    sys.stdout.write(report(out))
    print(f"wrote {out / 'crf_layer1.md'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
