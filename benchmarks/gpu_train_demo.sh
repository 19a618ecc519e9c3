#!/usr/bin/env bash
# A GPU burst of the demo GAN (benchmarks/gpu_train_demo.py), the whole call bounded to
# under 10 minutes: MINUTES of training, then a clean snapshot and the files for the CPU
# in OUT (burst.json and burst.tar.NNN, each under 16 MiB).
#   benchmarks/gpu_train_demo.sh OUT MINUTES [--from .gpu/run] [--dataset .gpu/ds64]
#   benchmarks/gpu_train_demo.sh OUT 0.05 --dry-run --max-steps 2     on a CPU (CI's test)
# Device call (after `python benchmarks/gpu_train_demo.py pack RUN --dataset DS --into .gpu`
# and `echo /.gpu/ >> .git/info/exclude`), with carry [".gpu"]:
#   PYTHONUNBUFFERED=1 bash benchmarks/gpu_train_demo.sh $OUT 7.5 --from .gpu/run --dataset .gpu/ds64
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: benchmarks/gpu_train_demo.sh OUT MINUTES [options]}"
minutes="${2:?usage: benchmarks/gpu_train_demo.sh OUT MINUTES [options]}"
shift 2
# python3: the device machine's interpreter with PyTorch; the script stops itself at
# --budget-s (560 s); timeout is the backstop under the 600 s a device command may run.
exec timeout -k 5 585 "${PYTHON:-python3}" benchmarks/gpu_train_demo.py burst --out "$out" --minutes "$minutes" \
    --budget-s 560 "$@"
