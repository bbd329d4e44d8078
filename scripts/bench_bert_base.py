#!/usr/bin/env python
"""Training step time and peak memory of every task family at the bert-base-chinese shape
(12 layers x 768, 12 heads, the shipped data/vocab/bert-base-chinese/bert_config.json), on
this machine, without the real weights: a randomly initialised BertForMaskedLM of that config
is saved with ``save_pretrained`` and loaded like the real checkpoint
(``encoder.pretrained=<that directory>``), which is what a run with bert-base-chinese costs.

Each family is one real ``python -m bertlab.train`` command (printed, and written to the
report) with the experiment's own batch size and max_len, ``trainer.max_steps=--steps``, no
validation, no test, no checkpoints. The step time is the median of the training steps after
the first (forward, backward, optimizer step: the seconds from batch start to batch end,
measured by :class:`StepTimer`); the first step is shown apart. Memory: the peak resident set
of the fit (Linux ``VmHWM``, reset when the fit starts: the loaded weights count, the loading
does not) and the peak of the whole process (``ru_maxrss``); on a GPU torch's peak allocated.

Usage:
  python scripts/bench_bert_base.py [--steps 3] [--threads 1] [--families cws_crf,ner_crf]
         [--device cpu|cuda] [--out docs/bench_bert_base.md] [--model-dir DIR] [--timeout 900]
Writes the Markdown table (command, date, machine, CPU flags) to ``--out`` atomically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "data" / "vocab" / "bert-base-chinese" / "bert_config.json"
VOCAB = ROOT / "data" / "vocab" / "bert-base-chinese" / "vocab.txt"

#: every task family: its experiment and data limits that leave enough examples for a few
#: batches of the experiment's own batch size (the data are read once, the limits keep that short)
FAMILIES: dict[str, list[str]] = {
    "cws_crf": ["experiment=cws_crf", "data.max_train_chars=30000", "data.max_eval_sentences=8"],
    "ner_crf": ["experiment=ner_crf", "data.max_train_chars=30000", "data.max_eval_sentences=8"],
    "triples": ["experiment=triples", "data.max_train_records=400", "data.max_eval_records=8"],
    "mrc_mlm": ["experiment=mrc_mlm", "data.max_train_questions=200", "data.max_eval_questions=4"],
    "mrc_seq2seq": ["experiment=mrc_seq2seq", "data.max_train_questions=200", "data.max_eval_questions=4"],
    "sentiment_cls": [
        "experiment=sentiment_cls",
        "encoder.model_type=bert",  # the experiment's default checkpoint is an ALBERT
        "data.max_train_examples=200",
        "data.max_eval_examples=8",
    ],
    "cond_gen": ["experiment=cond_gen", "data.max_train_chars=30000", "data.max_eval_sentences=8"],
    "pretrain_mlm": [
        "experiment=pretrain_mlm",
        "data.max_train_texts=400",
        "data.max_val_texts=8",
        "model.export_on_fit_end=false",
    ],
}


def cpu_info() -> dict[str, str]:
    """The CPU model and the vector flags that decide fp32/bf16 speed (avx512_bf16, amx)."""
    model, flags = platform.processor() or "?", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("?", "", platform.processor()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    wanted = [f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma")]
    return {
        "model": model,
        "cores": str(os.cpu_count()),
        "avx512_bf16": "yes" if "avx512_bf16" in flags else "no",
        "amx_bf16": "yes" if "amx_bf16" in flags else "no",
        "flags": " ".join(wanted) or "?",
    }


def make_bert_base_lookalike(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A randomly initialised BertForMaskedLM of the shipped bert-base-chinese config, saved
    with ``save_pretrained`` plus the shipped vocab.txt: loads like the real checkpoint."""
    import torch
    from transformers import BertConfig, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    torch.manual_seed(seed)
    model = BertForMaskedLM(BertConfig.from_json_file(str(CONFIG)))
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    shutil.copy(VOCAB, out / "vocab.txt")
    return out


class StepTimer(pl.Callback):
    """Seconds of every training batch (start to end: forward, backward, optimizer step), the
    batch shape, and the peak memory of the fit, written to ``out`` (JSON) when the fit ends."""

    def __init__(self, out: str):
        self.out = out
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self.shapes: list[list[int]] = []
        self._t0 = self._c0 = 0.0

    def on_fit_start(self, trainer, pl_module):
        from bertlab.callbacks.throughput import reset_peak_memory

        reset_peak_memory(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds.append(time.perf_counter() - self._t0)
        self.cpu_seconds.append(time.process_time() - self._c0)
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        self.shapes.append(list(ids.shape) if ids is not None else [])

    def on_fit_end(self, trainer, pl_module):
        import resource

        from bertlab.callbacks.throughput import peak_memory_mb
        from bertlab.utils.atomic import atomic_write_json

        enc = getattr(pl_module, "encoder", None)
        config = getattr(enc, "config", None)
        atomic_write_json(
            self.out,
            {
                "step_seconds": self.seconds,
                "step_cpu_seconds": self.cpu_seconds,
                "batch_shapes": self.shapes,
                "peak_fit_mb": peak_memory_mb(pl_module.device),
                "peak_process_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,  # Linux: KiB
                "layers": getattr(config, "num_hidden_layers", None),
                "hidden": getattr(config, "hidden_size", None),
                "vocab": getattr(config, "vocab_size", None),
                "parameters": sum(p.numel() for p in pl_module.parameters()),
            },
        )


def command(
    family: str, model_dir: str, steps: int, threads: int, device: str, run_dir: str, batch_size: int = 0
) -> list[str]:
    trainer = ["trainer=gpu", "trainer.devices=1"] if device == "cuda" else ["trainer=cpu"]
    batch = [f"data.batch_size={batch_size}"] if batch_size else []
    if batch_size and family == "pretrain_mlm":  # packed 512-token rows: half as many (memory)
        batch.append(f"data.packed_batch_size={max(1, batch_size // 2)}")
    return [
        sys.executable,
        "-m",
        "bertlab.train",
        *FAMILIES[family],
        *batch,
        f"encoder.pretrained={model_dir}",
        *trainer,
        f"threads={threads}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=0",
        "+trainer.enable_checkpointing=false",
        "test=false",
        "optimized_metric=null",
        "callbacks=none",
        "+callbacks.step_timer._target_=bench_bert_base.StepTimer",
        f"+callbacks.step_timer.out={run_dir}/step_times.json",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
    ]


def run_family(family: str, model_dir: str, args: argparse.Namespace, work: Path) -> dict:
    run_dir = work / family
    cmd = command(family, model_dir, args.steps, args.threads, args.device, str(run_dir), args.batch_size)
    env = dict(os.environ, WANDB_MODE="offline", HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), str(ROOT / "scripts"), os.environ.get("PYTHONPATH")) if p
    )
    row: dict = {"family": family, "command": shlex.join(["python", *cmd[1:]])}
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        log, _ = proc.communicate()
        return row | {"status": f"timed out after {args.timeout} s"}
    row["wall_s"] = time.time() - t0
    if proc.returncode != 0:
        return row | {"status": f"failed ({proc.returncode})", "log": log[-3000:]}
    stats = json.loads((run_dir / "step_times.json").read_text())
    secs = stats["step_seconds"]
    row |= {
        "status": "ok",
        "first_step_s": secs[0] if secs else None,
        "step_s": statistics.median(secs[1:]) if len(secs) > 1 else (secs[0] if secs else None),
        "timed_steps": max(len(secs) - 1, 0),
        "step_cpu_s": statistics.median(stats["step_cpu_seconds"][1:] or stats["step_cpu_seconds"]),
        "batch": stats["batch_shapes"][1] if len(stats["batch_shapes"]) > 1 else stats["batch_shapes"][:1],
        "peak_fit_mb": stats["peak_fit_mb"],
        "peak_process_mb": stats["peak_process_mb"],
        "parameters": stats["parameters"],
        "layers": stats["layers"],
        "hidden": stats["hidden"],
        "vocab": stats["vocab"],
    }
    return row


def report(rows: list[dict], args: argparse.Namespace, cpu: dict[str, str], argv: list[str], load: str = "?") -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    batch_text = (
        f"data.batch_size={args.batch_size} (pretraining: {max(1, args.batch_size // 2)} packed rows of 512)"
        if args.batch_size
        else "the experiment's own batch size"
    )
    memory_text = (
        "peak fit RSS = Linux VmHWM reset at fit start (weights + Adam state + activations)"
        if args.device == "cpu"
        else "peak fit = torch.cuda.max_memory_allocated, reset at fit start (in the RSS column)"
    )
    lines = [
        "# Training cost at the bert-base-chinese shape (random weights)",
        "",
        f"Command: `{shlex.join(['python', 'scripts/bench_bert_base.py', *argv])}`",
        "",
        f"- date: {now}; machine: {platform.node()}, {cpu['model']}, {cpu['cores']} cores, "
        f"Python {platform.python_version()}, torch {_torch_version()}; device: {args.device}, "
        f"threads={args.threads}; load average (1 min) at start / end: {load}",
        f"- CPU flags: avx512_bf16 **{cpu['avx512_bf16']}**, amx_bf16 **{cpu['amx_bf16']}** ({cpu['flags']})",
        "- model: BertForMaskedLM of data/vocab/bert-base-chinese/bert_config.json (12 layers x 768, 12 heads, "
        "random init), saved with save_pretrained and loaded with `encoder.pretrained=<dir>` (all 12 layers, "
        "the vocabulary trimmed as each experiment says); fp32 (`32-true`)",
        f"- each family: one `python -m bertlab.train` run, {args.steps} training steps at {batch_text} and the "
        "experiment's max_len, no validation/test/checkpoints; s/step = median wall seconds of the steps after "
        "the first; CPU s/step = the same steps' process CPU seconds (on a machine shared with other jobs the "
        f"wall time includes waiting for a core; the CPU time does not); {memory_text}; peak process RSS = the "
        "run's ru_maxrss (data reading and checkpoint loading included)",
        "",
        "| family | batch (B x T) | parameters | s/step | CPU s/step | first step s | peak fit RSS MiB "
        "| peak process RSS MiB | wall s | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['family']} | - | - | - | - | - | - | - | {r.get('wall_s', 0):.0f} | {r['status']} |")
            continue
        batch = " x ".join(str(x) for x in r["batch"]) if r["batch"] else "-"
        lines.append(
            f"| {r['family']} | {batch} | {r['parameters'] / 1e6:.1f} M | {r['step_s']:.2f} | {r['step_cpu_s']:.2f} | "
            f"{r['first_step_s']:.2f} | {r['peak_fit_mb']:.0f} | {r['peak_process_mb']:.0f} | {r['wall_s']:.0f} | ok |"
        )
    lines += ["", "Commands (run from the repository root; `<model>` is the saved random checkpoint):", ""]
    for r in rows:
        lines.append(f"- {r['family']}: `{r['command']}`")
    return "\n".join(lines) + "\n"


def _torch_version() -> str:
    import torch

    return torch.__version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="training steps per family (the first is not timed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="data.batch_size of every family (pretraining: packed rows of 512 tokens: half); 0: the "
        "experiment's own (32-64: 5-15 GB of activations at this shape)",
    )
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"comma list of {', '.join(FAMILIES)}")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_bert_base.md"))
    ap.add_argument("--model-dir", default=None, help="reuse (or create) the random checkpoint here")
    ap.add_argument("--work-dir", default=None, help="run folders (default: a temporary folder, removed)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per family")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        print(f"bench_bert_base: --families: unknown {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
        return 2
    cpu = cpu_info()
    load0 = os.getloadavg()[0]
    print(f"bench_bert_base: CPU {cpu['model']}: avx512_bf16 {cpu['avx512_bf16']}, amx_bf16 {cpu['amx_bf16']}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_bert_base_"))
    work = Path(args.work_dir) if args.work_dir else tmp / "runs"
    model_dir = Path(args.model_dir) if args.model_dir else tmp / "bert-base-chinese-random"
    try:
        if not (model_dir / "config.json").is_file():
            make_bert_base_lookalike(model_dir)
        rows = []
        for fam in families:
            row = run_family(fam, str(model_dir), args, work)
            row["command"] = row["command"].replace(str(model_dir), "<model>").replace(str(work), "<runs>")
            rows.append(row)
            extra = f"{row['step_s']:.2f} s/step, peak fit RSS {row['peak_fit_mb']:.0f} MiB" if "step_s" in row else ""
            print(f"bench_bert_base: {fam}: {row['status']} {extra} ({row.get('wall_s', 0):.0f} s)", flush=True)
            if "log" in row:
                print(row["log"], file=sys.stderr)
        text = report(rows, args, cpu, argv, load=f"{load0:.1f} / {os.getloadavg()[0]:.1f}")
        from bertlab.utils.atomic import atomic_write_text

        atomic_write_text(args.out, text)
        print(text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
