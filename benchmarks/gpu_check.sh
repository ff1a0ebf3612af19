#!/usr/bin/env bash
# One device call that checks and times everything GPU-only (see ../shared/device/README.md):
#   bash benchmarks/gpu_check.sh "$OUT"
# after installing the wheels the lent machine lacks (../shared/device/fetch-wheels.sh --dask).
# Prints the GPU tests, then benchmark tables with the bincount table path and the fused kernel.
set -uo pipefail
out=${1:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python -m pytest -m gpu -q -ra -p no:cacheprovider 2>&1 | tail -40 | tee "$out/pytest-gpu.txt"
for fused in 0 1; do
  echo "== GPU_HPI_FUSED_KERNEL=$fused" | tee -a "$out/bench.txt"
  GPU_HPI_FUSED_KERNEL=$fused GPU_HPI_BENCH_DATA=/tmp/bench-data python -m benchmarks --backend gpu \
    --sizes 10M,150M --cases normal --json "$out/bench-normal-$fused.json" 2>&1 | tee -a "$out/bench.txt"
done
GPU_HPI_BENCH_DATA=/tmp/bench-data python -m benchmarks --backend gpu --sizes 10M,150M --cases lsqr,lsmr \
  --json "$out/bench-iterative.json" 2>&1 | tee -a "$out/bench.txt"
