#!/usr/bin/env bash
# The GPU check in one device call (see ../shared/device/README.md), at most 5 minutes on an H200
# with its data:
#   bash benchmarks/gpu_check.sh "$OUT"
# after installing the wheels the machine lacks (rmm, hydra-core, omegaconf, antlr4, duckdb; cudf
# in parts). Steps, each timed:
#   1. the install check (versions, the device);
#   2. the GPU tests (`pytest -m gpu`), and beside them the data and kernel warm-ups
#      (`python -m benchmarks.gpu_targets --prepare`: files generated on the device, once; the
#      1B-pair input is 8 hard links of the 150M-pair file);
#   3. the GPU target rows, the GPU against this machine's CPU (benchmarks/gpu_targets.py);
#   4. the table, its last row this script's own total.
# OUT gets 8 files, no folder: check.log (all that is printed), targets.md, targets.json,
# importtime.txt, profile.txt, kernels.txt, pytest-gpu.txt and runs.tar.gz (every run's log and
# summary.json, the data and warm-up log). Data, run folders and kernel caches go to
# GPU_CHECK_WORK (default /tmp/gpu-check), never under OUT.
# GPU_CHECK_ARGS: options for gpu_targets (a dry run anywhere: "--scale 0.001 --backend cpu", and
# --fork to fork the plain runs from one process that imported gpu_hpi and made one small run,
# an identical command run once, timing none of them);
# GPU_CHECK_TESTS=0 leaves out the tests.
set -uo pipefail
out=${1:-gpu-out}
work=${GPU_CHECK_WORK:-/tmp/gpu-check}
read -r -a extra <<< "${GPU_CHECK_ARGS:-}"
mkdir -p "$out" "$work"
exec > >(tee "$out/check.log") 2>&1
log_pid=$!
export PYTHONUNBUFFERED=1 GPU_CHECK_START GPU_CHECK_WORK=$work
GPU_CHECK_START=$(date +%s.%N)
start=$SECONDS
steps=""
took() {  # took NAME SINCE: a step's seconds, printed and kept for the last row
  steps+="${steps:+, }$1 $(( SECONDS - $2 )) s"
  echo "-- $1: $(( SECONDS - $2 )) s (at $(( SECONDS - start )) s)"
}
targets() { python -m benchmarks.gpu_targets "$out" --work "$work" "${extra[@]}" "$@"; }

targets --plan

echo "== 1. install check"
t=$SECONDS
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi: not there"
python - <<'EOF' 2>&1
import importlib
import os
names = "gpu_hpi numpy scipy pandas pyarrow duckdb cupy pylibcudf cudf rmm hydra xdist"
for name in names.split():
    try:
        module = importlib.import_module(name)
        print(f"{name:10} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # report every missing piece, then go on
        print(f"{name:10} MISSING ({type(exc).__name__}: {exc})")
import gpu_hpi
print("backend:", gpu_hpi.resolve_backend("auto").device, "| cores:", len(os.sched_getaffinity(0)))
# what the host's many-small-solves rows depend on: a CPU quota below the cores, BLAS threads
for path in ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
    if os.path.exists(path):
        print(f"{path}: {open(path).read().strip()}")
import time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from gpu_hpi.backend.lapack import cholesky_solve, one_blas_thread
system = np.eye(123) * 4 + 0.1
cores = len(os.sched_getaffinity(0))
count = 100 * cores  # 1,600 on the 16-core host
with one_blas_thread():
    for workers in (1, cores):
        parts = np.array_split(np.tile(system, (count, 1, 1)), workers)  # solved in place: a new copy
        began = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda part: cholesky_solve(part, np.ones(part.shape[:2]), True), parts))
        print(f"{count:,} Cholesky solves and inverses of 123 x 123, {workers} threads: {time.perf_counter() - began:.3f} s")
from threadpoolctl import threadpool_info
for lib in threadpool_info():
    print(f"threadpool: {lib.get('internal_api')} {lib.get('num_threads')} threads, {lib.get('filepath')}")
EOF
took "install check" "$t"

echo "== 2. GPU tests, beside them the data and kernel warm-ups"
t=$SECONDS
targets --prepare > "$work/prepare.log" 2>&1 &
prepare=$!
if [[ ${GPU_CHECK_TESTS:-1} != 0 ]]; then
  parallel=()
  python -c "import xdist" 2>/dev/null && parallel=(-n 4)
  # the warm-ups' kernel cache: kernels compiled by one are there for the other
  CUPY_CACHE_DIR="$work/cupy-warm" python -m pytest -m gpu -x -q -p no:cacheprovider "${parallel[@]}" \
    > "$out/pytest-gpu.txt" 2>&1
  echo "pytest -m gpu ${parallel[*]}: exit $?"
  tail -n 15 "$out/pytest-gpu.txt"
else
  echo "left out (GPU_CHECK_TESTS=0)" | tee "$out/pytest-gpu.txt"
fi
took "GPU tests" "$t"
wait "$prepare"
echo "data and warm-ups: exit $?"
cat "$work/prepare.log"
took "step 2 (tests, beside them data and warm-ups)" "$t"

echo "== 3. target rows"
t=$SECONDS
targets
took "rows" "$t"

echo "== 4. table (the check's total is its last row)"
targets --finish $(( SECONDS - start )) --steps "$steps"
echo "== done in $(( SECONDS - start )) s"
exec >&- 2>&-
wait "$log_pid" 2>/dev/null || true  # check.log complete before the machine sends OUT back
exit 0
