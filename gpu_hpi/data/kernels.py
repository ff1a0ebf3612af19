"""A fused CUDA kernel for the cell table: one read of the pair columns gives the per-cell count,
sum of y and sum of y^2, and the drop counts by reason, where the CuPy bincount path makes about
ten passes (keys, masks, three bincounts). Global atomics into the dense G x T x T table.

Verified on an H200 (tests/gpu/test_gpu.py::test_fused_kernel_equals_bincount: counts and drop counts
equal to the bincount path's, sums to rounding; 150M pairs in 6 ms against 44 ms), so it is the
default for dense tables without prices; GPU_HPI_FUSED_KERNEL=0 selects the bincount path, kept
as the reference the test compares against. One RawModule: one compilation, kept in CuPy's kernel
cache (CUPY_CACHE_DIR) across runs.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from ..backend.core import array_namespace, to_host
from .rules import applicable, c_condition

_SOURCE = r"""
template <typename P, typename Y>
__global__ void cell_sums(const P* prev, const P* recent, const Y* y, const int* group, const long long n,
                          const int T, const int n_groups, unsigned long long* count, double* sum_y,
                          double* sum_y2, unsigned long long* dropped) {
    // dropped: per reason of REASONS (data.rules), each pair counted under the first it fails
    __shared__ unsigned long long block_dropped[N_REASONS];
    if (threadIdx.x < N_REASONS) block_dropped[threadIdx.x] = 0;
    __syncthreads();
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += stride) {
        const int g = group ? group[k] : 0;
        const long long i = (long long)prev[k];
        const long long j = (long long)recent[k];
        const double v = (double)y[k];
        int reason = -1;
REASON_CHAIN
        if (reason < 0 && g >= n_groups) reason = 0;  // never written past the table (codes are below n_groups)
        if (reason >= 0) {
            atomicAdd(&block_dropped[reason], 1ULL);
            continue;
        }
        const long long cell = ((long long)g * T + i) * T + j;
        atomicAdd(&count[cell], 1ULL);
        atomicAdd(&sum_y[cell], v);
        atomicAdd(&sum_y2[cell], v * v);
    }
    __syncthreads();
    if (threadIdx.x < N_REASONS && block_dropped[threadIdx.x])
        atomicAdd(&dropped[threadIdx.x], block_dropped[threadIdx.x]);
}
"""
_PERIOD_TYPES = {np.dtype(np.int16): "short", np.dtype(np.int32): "int"}
_Y_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# the drop rules of pairs without prices, in data.rules' order, as the kernel's C: g (group code),
# i, j (periods), v (y as double), T
_KERNEL_RULES = applicable({"group": 1, "prev": 1, "recent": 1, "y": 1})
REASONS = tuple(rule.reason for rule in _KERNEL_RULES)


def reason_chain() -> str:
    """The kernel's tests of the drop rules: the first a pair fails sets `reason`."""
    names = {"group": "g", "prev": "i", "recent": "j", "y": "v", "T": "T"}
    return "\n".join(
        f"        {'else ' if k else ''}if ({c_condition(rule, names)}) reason = {k};"
        for k, rule in enumerate(_KERNEL_RULES)
    )


def kernel_source() -> str:
    return _SOURCE.replace("REASON_CHAIN", reason_chain()).replace("N_REASONS", str(len(REASONS)))


def enabled() -> bool:
    return os.environ.get("GPU_HPI_FUSED_KERNEL", "1") != "0"


def applies(backend: Any, pairs: Any, dense: bool) -> bool:
    """Whether the fused kernel builds this table: pairs on the GPU without prices, a dense key
    space, and GPU_HPI_FUSED_KERNEL not 0."""
    return dense and backend.is_gpu and pairs.price_prev is None and enabled()


@functools.cache
def _module() -> Any:
    import cupy

    names = [f"cell_sums<{p}, {y}>" for p in _PERIOD_TYPES.values() for y in _Y_TYPES.values()]
    return cupy.RawModule(code=kernel_source(), options=("-std=c++14",), name_expressions=names), names


def fused_cell_sums(
    prev: Any, recent: Any, y: Any, group: Any, n_periods: int, n_groups: int
) -> tuple[Any, Any, Any, dict[str, int]]:
    """(count, sum_y, sum_y2) over the dense n_groups x T x T key space and the drop counts by
    reason, in one kernel launch; the dense arrays come back to the host (a few MB), where the
    empty cells are left out without a kernel to compile."""
    import cupy

    if prev.dtype not in _PERIOD_TYPES:
        prev, recent = prev.astype(np.int32), recent.astype(np.int32)
    recent = recent.astype(prev.dtype, copy=False)
    if y.dtype not in _Y_TYPES:
        y = y.astype(np.float64)
    codes = None if group is None else cupy.ascontiguousarray(group, dtype=np.int32)
    n_keys = n_groups * n_periods * n_periods
    count = cupy.zeros(n_keys, dtype=np.uint64)
    sum_y = cupy.zeros(n_keys, dtype=np.float64)
    sum_y2 = cupy.zeros(n_keys, dtype=np.float64)
    dropped = cupy.zeros(len(REASONS), dtype=np.uint64)
    module, _ = _module()
    kernel = module.get_function(f"cell_sums<{_PERIOD_TYPES[prev.dtype]}, {_Y_TYPES[y.dtype]}>")
    n = int(y.shape[0])
    threads = 256
    blocks = max(1, min(-(-n // threads), 32 * cupy.cuda.Device().attributes["MultiProcessorCount"]))
    kernel(
        (blocks,),
        (threads,),
        (
            cupy.ascontiguousarray(prev),
            cupy.ascontiguousarray(recent),
            cupy.ascontiguousarray(y),
            codes if codes is not None else np.intp(0),
            np.int64(n),
            np.int32(n_periods),
            np.int32(n_groups),
            count,
            sum_y,
            sum_y2,
            dropped,
        ),
    )
    counts = {r: int(c) for r, c in zip(REASONS, to_host(dropped).tolist(), strict=True) if c}
    return to_host(count).astype(np.int64), to_host(sum_y), to_host(sum_y2), counts


# The dummy matrix's two products for LSQR / LSMR without assembling it (gpu_hpi.data.design):
# A x is a gather per pair, A^T u a sum per column. On the device the sum per column is
# accumulated per block in shared memory, then added to the output once per block, where CuPy's
# bincount makes every pair an atomic add on one of a few thousand global addresses.
_COLUMN_SUMS = r"""
extern "C" __global__ void column_sums(const double* u, const int* prev, const int* recent, const long long m,
                                       const int k, double* out) {
    extern __shared__ double acc[];
    for (int c = threadIdx.x; c < k; c += blockDim.x) acc[c] = 0.0;
    __syncthreads();
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; r < m; r += stride) {
        const double v = u[r];
        const int p = prev[r];
        const int q = recent[r];
        if (q < k) atomicAdd(&acc[q], v);  // k: the padding column of periods without a column
        if (p < k) atomicAdd(&acc[p], -v);
    }
    __syncthreads();
    for (int c = threadIdx.x; c < k; c += blockDim.x)
        if (acc[c] != 0.0) atomicAdd(&out[c], acc[c]);
}
"""
SHARED_BYTES = 48 * 1024  # dynamic shared memory a block gets without opting in


@functools.cache
def _design_kernels() -> tuple[Any, Any]:
    import cupy

    differences = cupy.ElementwiseKernel(
        "raw float64 x, int32 p, int32 r, int32 k",
        "float64 out",
        "out = (r < k ? x[r] : 0.0) - (p < k ? x[p] : 0.0)",
        "gpu_hpi_pair_differences",
    )
    return differences, cupy.RawKernel(_COLUMN_SUMS, "column_sums")


def pair_differences(x: Any, prev: Any, recent: Any) -> Any:
    """(M,) x[recent] - x[prev] for int32 columns in [0, K], x of length K (column K reads 0)."""
    k = int(x.shape[0])
    xp = array_namespace(x)
    if xp is np or not enabled():
        padded = xp.zeros(k + 1)
        padded[:k] = x
        return padded[recent] - padded[prev]
    differences, _ = _design_kernels()
    return differences(x.astype(np.float64, copy=False), prev, recent, np.int32(k))


def column_sums(u: Any, prev: Any, recent: Any, k: int) -> Any:
    """(k,) per column c < k: the sum of u over rows with recent == c less over rows with prev == c."""
    xp = array_namespace(u)
    if xp is np or not enabled() or 8 * k > SHARED_BYTES:
        return (xp.bincount(recent, weights=u, minlength=k + 1) - xp.bincount(prev, weights=u, minlength=k + 1))[:k]
    import cupy

    _, kernel = _design_kernels()
    out = cupy.zeros(k, dtype=np.float64)
    m = int(u.shape[0])
    threads = 512
    blocks = max(1, min(-(-m // threads), 4 * cupy.cuda.Device().attributes["MultiProcessorCount"]))
    kernel(
        (blocks,),
        (threads,),
        (
            cupy.ascontiguousarray(u, dtype=np.float64),
            cupy.ascontiguousarray(prev, dtype=np.int32),
            cupy.ascontiguousarray(recent, dtype=np.int32),
            np.int64(m),
            np.int32(k),
            out,
        ),
        shared_mem=8 * k,
    )
    return out
