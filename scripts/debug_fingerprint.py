"""Every experiment at debug size (seed 42, 1 thread): its metrics, for a before/after check of a
refactoring that must not change behaviour (issue 30: "debug-size metrics bit-identical").

    python scripts/debug_fingerprint.py run --out before.json [--only cws_crf,ner_crf] [--jobs 2]
    python scripts/debug_fingerprint.py compare before.json after.json   # exit 1 on any difference

Each experiment runs ``python -m bertlab.train experiment=<name> debug=default seed=42 threads=1``
in a fresh temporary folder; the metrics of its metrics.json are kept except what measures time or
names a path (wall seconds, tokens/s, clocks, peak memory, checkpoint and prediction paths). Floats are stored
as ``float.hex`` so "equal" means bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("seconds", "per_s", "clock", "memory", "checkpoint", "prediction_files", "resumed_from", "_path")


def experiments() -> list[str]:
    conf = ROOT / "conf" / "experiment"
    return sorted(str(p.relative_to(conf).with_suffix("")) for p in conf.rglob("*.yaml"))


def _stable(obj):
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if not any(v_ in k for v_ in VOLATILE)}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    if isinstance(obj, float):
        return float.hex(obj)
    return obj


def run_one(name: str, tmp: Path, extra: list[str]) -> tuple[str, dict]:
    run_dir = tmp / name.replace("/", "_")
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        f"experiment={name}",
        "debug=default",
        "seed=42",
        "threads=1",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp / 'logs'}",
        "logger=csv",
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    metrics = run_dir / "metrics.json"
    if res.returncode != 0 or not metrics.exists():
        tail = [ln for ln in res.stderr.splitlines() if ln.strip()][-1:] or ["(no stderr)"]
        return name, {"exit": res.returncode, "error": tail[0][:300]}
    return name, {"exit": 0, "metrics": _stable(json.loads(metrics.read_text()))}


def cmd_run(args: argparse.Namespace) -> int:
    names = args.only.split(",") if args.only else experiments()
    with tempfile.TemporaryDirectory(prefix="fingerprint_") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(lambda n: run_one(n, Path(tmp), args.overrides), names))
    for name in names:
        r = results[name]
        state = "ok" if r["exit"] == 0 else f"exit {r['exit']}: {r['error']}"
        print(f"{name:32s} {state}")
    Path(args.out).write_text(json.dumps(dict(sorted(results.items())), indent=1, ensure_ascii=False) + "\n")
    return 0


def _diff(a, b, key: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{key}.{k}: {'only after' if k not in a else 'only before'}")
            else:
                out += _diff(a[k], b[k], f"{key}.{k}")
        return out
    return [] if a == b else [f"{key}: {a!r} -> {b!r}"]


def cmd_compare(args: argparse.Namespace) -> int:
    before, after = json.loads(Path(args.before).read_text()), json.loads(Path(args.after).read_text())
    diffs = _diff(before, after)
    for line in diffs:
        print(line)
    same = sum(1 for n in before if n in after and not _diff(before[n], after[n]))
    print(f"{same} of {len(before)} experiments identical; {len(diffs)} differences")
    return 1 if diffs else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--only", default="")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    args = ap.parse_args()
    return cmd_run(args) if args.cmd == "run" else cmd_compare(args)


if __name__ == "__main__":
    sys.exit(main())
