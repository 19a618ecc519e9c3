#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py), bounded to 8 + 7 minutes: run it whenever a GPU
# machine is lent and put its figures in docs/models.md.
#   benchmarks/gpu_check.sh OUT            on a GPU machine
#   benchmarks/gpu_check.sh OUT --dry-run  on a CPU (what CI tests)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benchmarks/gpu_check.sh OUT [--dry-run]}"
shift
timeout 480 python benchmarks/gpu_check.py --out "$out" --parts training export "$@"
# An imported pSp model (IR-SE50 + 256 px decoder, fp16): its own time limit, since a
# TensorRT engine build for a graph of that size takes minutes; OUT/gpu_check_import.json.
exec timeout 420 python benchmarks/gpu_check.py --out "$out" --parts import "$@"
