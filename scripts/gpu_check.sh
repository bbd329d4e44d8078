#!/usr/bin/env bash
# One prepared check of a GPU machine (<= 8 minutes on one GPU): the CRF benchmark on CUDA, a
# short bf16-mixed training of every task (debug size), evaluation exactness device vs CPU on
# the same checkpoints, one summary table (also <out>/gpu_check.md).
#   scripts/gpu_check.sh [--out DIR]                 # on the GPU
#   scripts/gpu_check.sh --device cpu [--tasks cws_crf --crf-repeats 2]   # CPU fallback (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
exec "$PY" -m bertlab.utils.gpu_check "$@"
