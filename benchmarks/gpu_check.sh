#!/usr/bin/env bash
# Everything GPU-only in one device call (see ../shared/device/README.md), about 5 minutes on an H200:
#   bash benchmarks/gpu_check.sh "$OUT"
# after installing the wheels the lent machine lacks (rmm, hydra-core, omegaconf, antlr4; cudf in
# parts). Steps, each logged under $OUT: 1. the install check (versions, the device); 2. the GPU
# tests (`pytest -m gpu`: the CuPy path against numpy, the fused kernel against bincount, the cudf
# reader against pyarrow); 3. every GPU target row with PASS/FAIL (benchmarks/gpu_targets.py),
# on data generated there. The last lines printed are the target table.
set -uo pipefail
out=${1:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
start=$SECONDS

echo "== 1. install check"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python - <<'EOF' 2>&1 | tee "$out/install.txt"
import importlib
for name in ("gpu_hpi", "numpy", "scipy", "pyarrow", "cupy", "cudf", "rmm", "hydra", "omegaconf", "dask"):
    try:
        module = importlib.import_module(name)
        print(f"{name:10} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # report every missing piece, then go on
        print(f"{name:10} MISSING ({type(exc).__name__}: {exc})")
import gpu_hpi
print("backend:", gpu_hpi.resolve_backend("auto").device)
EOF

echo "== 2. GPU tests ($((SECONDS - start)) s)"
python -m pytest -m gpu -q -ra -p no:cacheprovider 2>&1 | tail -40 | tee "$out/pytest-gpu.txt"

echo "== 3. GPU targets ($((SECONDS - start)) s)"
python -m benchmarks.gpu_targets "$out" 2>&1 | tee "$out/targets.txt"
echo "== done in $((SECONDS - start)) s"
