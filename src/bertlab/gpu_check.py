"""One prepared check of a GPU machine (``scripts/gpu_check.sh``; ``--device cpu`` runs the
same steps on the CPU, as the test does):

1. the CRF benchmark (``scripts/bench_crf.py``: bertlab's CRF vs pytorch-crf) on the device;
2. a short ``bf16-mixed`` training of every task family (``debug=default``: each task's debug
   size; a tiny encoder, a few steps), each a real ``python -m bertlab.train`` run;
3. evaluation exactness: each run's last checkpoint evaluated in ``32-true`` on the device
   and on the CPU (``python -m bertlab.evaluate``): the counts must be equal and the scores
   equal within 1e-6;
4. one summary table (Markdown) on stdout, also written to ``<out>/gpu_check.md``.

Exit status 1 when any step failed. Budget on one GPU: well under 8 minutes (9 tiny runs,
18 evaluations, 3 CRF settings x ``--crf-repeats``).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bertlab.utils.hydra_utils import repo_root
from bertlab.utils.processes import child_env

ROOT = Path(repo_root())
ENC = [
    "encoder.num_layers=1",
    "encoder.hidden_size=64",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=128",
]
SHORT = [
    "debug=default",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=8",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.val_check_interval=1.0",
    "callbacks.rich_progress_bar=null",
    "logger=csv",
]
#: every task family: its experiment at debug size (``debug=default``) and what this check changes
TASKS: dict[str, list[str]] = {
    "cws_crf": ["experiment=cws_crf"],
    "cws_memm": ["experiment=cws_crf", "head=memm", "~optimizer.lr_multipliers"],
    "cws_softmax": ["experiment=cws_softmax"],
    "ner_crf": ["experiment=ner_crf"],
    "sentiment": ["experiment=sentiment_cls", "encoder.pretrained=null", "encoder.model_type=bert"],
    "triples": ["experiment=triples"],
    "mrc": ["experiment=mrc_mlm"],
    "generation": ["experiment=cond_gen"],
    "pretraining": ["experiment=pretrain_mlm"],
}
TIMING = ("seconds", "per_s", "wall")


def _cli(module: str, args: list[str], timeout: int) -> tuple[int, str, float]:
    """``python -m <module> <args>``: (exit status, the end of its output, seconds)."""
    return _run(["-m", module, *args], timeout)


def _run(args: list[str], timeout: int) -> tuple[int, str, float]:
    t0 = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout} s", time.time() - t0
    return proc.returncode, (proc.stdout + proc.stderr)[-2000:], time.time() - t0


def _device_trainer(device: str) -> list[str]:
    return ["trainer=gpu", "trainer.devices=1"] if device == "cuda" else ["trainer=cpu"]


def crf_bench(device: str, repeats: int, out: Path, timeout: int) -> tuple[list[dict], str | None]:
    """The rows of ``scripts/bench_crf.py`` on ``device`` (a child process), and its log when it failed."""
    rows_file = out / "bench_crf.json"
    script = str(ROOT / "scripts" / "bench_crf.py")
    rc, log, _ = _run(
        [
            script,
            "--device",
            device,
            "--repeats",
            str(repeats),
            "--warmup",
            "2",
            "--threads",
            "0",
            "--json",
            str(rows_file),
        ],
        timeout,
    )
    if rc != 0 or not rows_file.is_file():
        return [], f"exit status {rc}\n{log}"
    return json.loads(rows_file.read_text()), None


def _scores(metrics: dict) -> dict[str, float]:
    test = metrics.get("test") or {}
    return {k: v for k, v in test.items() if isinstance(v, (int, float)) and not any(t in k for t in TIMING)}


def check_task(name: str, overrides: list[str], device: str, out: Path, timeout: int) -> dict:
    run = out / name
    row: dict = {"task": name}
    rc, log, secs = _cli(
        "bertlab.train",
        [*overrides, *ENC, *SHORT, *_device_trainer(device), "trainer.precision=bf16-mixed", f"hydra.run.dir={run}"],
        timeout,
    )
    row["train_s"] = secs
    if rc != 0:
        return row | {"status": f"train failed ({rc})", "log": log}
    metrics = json.loads((run / "metrics.json").read_text())
    loss = metrics.get("train/loss", metrics.get("train/mlm_loss"))
    row["train_loss"] = loss
    ckpt = run / "checkpoints" / "last.ckpt"
    evals = {}
    for where in dict.fromkeys((device, "cpu")):
        rc, log, _ = _cli(
            "bertlab.evaluate",
            [
                f"ckpt_path={ckpt}",
                *_device_trainer(where),
                "trainer.precision=32-true",
                f"hydra.run.dir={run}/eval_{where}",
            ],
            timeout,
        )
        if rc != 0:
            return row | {"status": f"evaluate on {where} failed ({rc})", "log": log}
        evals[where] = _scores(json.loads((run / f"eval_{where}" / "metrics.json").read_text()))
    dev, cpu = evals[device], evals["cpu"]
    diff = max((abs(dev[k] - cpu[k]) for k in cpu if k in dev), default=math.nan)
    same_keys = dev.keys() == cpu.keys()
    exact = same_keys and all(
        dev[k] == cpu[k] if isinstance(cpu[k], int) and not isinstance(cpu[k], bool) else abs(dev[k] - cpu[k]) <= 1e-6
        for k in cpu
    )
    ok = loss is not None and math.isfinite(loss) and exact
    return row | {"eval_max_diff": diff, "n_scores": len(cpu), "status": "ok" if ok else "eval differs from CPU"}


def table(device: str, crf: list[dict], rows: list[dict]) -> str:
    lines = [f"## gpu_check on {device}", ""]
    if crf:
        lines += [
            "| CRF K x T | NLL f+b ms torchcrf / bertlab | decode ms torchcrf / bertlab | max abs dLL | same paths |"
        ]
        lines += ["|---|---:|---:|---:|---:|"]
        for r in crf:
            lines.append(
                f"| {r['K']} x {r['T']} | {r['nll_ref']:.2f} / {r['nll_ours']:.2f} | {r['dec_ref']:.2f} / "
                f"{r['dec_ours']:.2f} | {r['ll_diff']:.1e} | {r['same']:.3f} |"
            )
        lines.append("")
    lines += ["| task | bf16 train s | train loss | eval device vs CPU: max abs diff (scores) | status |"]
    lines += ["|---|---:|---:|---:|---|"]
    for r in rows:
        loss = f"{r['train_loss']:.4f}" if isinstance(r.get("train_loss"), float) else "-"
        diff = f"{r['eval_max_diff']:.1e} ({r['n_scores']})" if "eval_max_diff" in r else "-"
        lines.append(f"| {r['task']} | {r.get('train_s', 0):.0f} | {loss} | {diff} | {r['status']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)}")
    ap.add_argument("--crf-repeats", type=int, default=10, help="0: skip the CRF benchmark")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per train / evaluate command")
    ap.add_argument("--extra", action="append", default=[], help="one more override for every training run")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device visible; run with --device cpu for the CPU fallback", file=sys.stderr)
            return 2
    unknown = [t for t in args.tasks.split(",") if t and t not in TASKS]
    if unknown:
        print(f"gpu_check: --tasks: unknown {', '.join(unknown)}; choose from {', '.join(TASKS)}", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    crf, crf_error = crf_bench(args.device, args.crf_repeats, out, args.timeout) if args.crf_repeats > 0 else ([], None)
    if crf_error is not None:
        print(f"--- CRF benchmark failed: {crf_error}", file=sys.stderr)
    rows = []
    for name in (t for t in args.tasks.split(",") if t):
        row = check_task(name, TASKS[name] + args.extra, args.device, out, args.timeout)
        if row["status"] != "ok" and "log" in row:
            print(f"--- {name}: {row['status']}\n{row['log']}", file=sys.stderr)
        rows.append(row)
        print(f"gpu_check: {name}: {row['status']} ({row.get('train_s', 0):.0f} s)", flush=True)
    text = table(args.device, crf, rows)
    (out / "gpu_check.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if crf_error is None and all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
