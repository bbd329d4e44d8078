#!/usr/bin/env bash
# One prepared check of a GPU machine (<= 8 minutes on one GPU): the CRF benchmark on CUDA, a
# short bf16-mixed training of every task (debug size), evaluation exactness device vs CPU on
# the same checkpoints, one summary table (also <out>/gpu_check.md); then, when a GPU is
# visible, the bert-base-shape benchmark (scripts/bench_bert_base.py --device cuda: s/step and
# peak memory of every task family at 12 x 768; <out>/bench_bert_base.md, else a temp file).
#   scripts/gpu_check.sh [--out DIR]                 # on the GPU
#   scripts/gpu_check.sh --device cpu [--tasks cws_crf --crf-repeats 2]   # CPU fallback (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
rc=0
"$PY" -m bertlab.gpu_check "$@" || rc=$?
out=""
prev=""
for a in "$@"; do
  [ "$prev" = "--out" ] && out="$a"
  case "$a" in --out=*) out="${a#--out=}" ;; --device=cpu) exit "$rc" ;; esac
  [ "$prev" = "--device" ] && [ "$a" = "cpu" ] && exit "$rc"
  prev="$a"
done
if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  bench_out="${out:-$(mktemp -d)}/bench_bert_base.md"
  mkdir -p "$(dirname "$bench_out")"
  PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" "$PY" scripts/bench_bert_base.py --device cuda --steps 5 --out "$bench_out" || rc=1
fi
exit "$rc"
