"""The CuPy backend gives the numpy backend's tables and indices. Skipped without CuPy and a CUDA device."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from parity import backend_parity
from reference import Problem, assert_matches_reference, assert_tables_equal, random_problem, reference_index

import gpu_hpi
from gpu_hpi.data import cells
from gpu_hpi.data.pairs import GroupCodes

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")]

cupy = pytest.importorskip("cupy")

CPU = gpu_hpi.resolve_backend("cpu")
TOLERANCE = {"normal": (1e-9, 1e-7), "lsqr": (1e-8, 1e-6), "lsmr": (1e-8, 1e-6)}  # log index atol, se rtol


@pytest.fixture(scope="module")
def gpu() -> gpu_hpi.Backend:
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver or runtime missing
        pytest.skip(f"CuPy imports but finds no CUDA device ({exc})")
    if n_devices == 0:
        pytest.skip("no CUDA device")
    try:
        backend = gpu_hpi.resolve_backend("gpu")
    except gpu_hpi.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    assert backend.is_gpu and backend.xp is cupy
    return backend


@pytest.fixture(params=["dense", "sparse"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sparse":
        monkeypatch.setattr(cells, "DENSE_KEY_LIMIT", 0)
    return str(request.param)


def on_device(p: Problem) -> tuple[Any, Any, Any]:
    return cupy.asarray(p.prev), cupy.asarray(p.recent), cupy.asarray(p.y)


def tables(
    p: Problem, gpu: gpu_hpi.Backend, group_host: Any, group_device: Any, **kwargs: Any
) -> tuple[gpu_hpi.CellTable, gpu_hpi.CellTable]:
    """(numpy table, cupy table moved to the host) of the same pairs."""
    host = gpu_hpi.build_cell_table(
        gpu_hpi.prepare_pairs(p.prev, p.recent, p.y, group_host, n_periods=p.n_periods, backend=CPU), CPU, **kwargs
    )
    device_pairs = gpu_hpi.prepare_pairs(*on_device(p), group_device, n_periods=p.n_periods, backend=gpu)
    assert isinstance(device_pairs.y, cupy.ndarray)
    device = gpu_hpi.build_cell_table(device_pairs, gpu, **kwargs)
    assert isinstance(device.count, cupy.ndarray)
    return host, device.to_host()


@pytest.mark.parametrize("chunk_size", [None, 7])
@backend_parity(atol=1e-10, rtol=1e-12)
def test_cell_table_with_invalid_pairs(backend: gpu_hpi.Backend, path: str, chunk_size: int | None) -> Any:
    p = random_problem(np.random.default_rng(1))
    arrays = (backend.asarray(a) for a in (p.prev, p.recent, p.y))
    # NaN ids: factorised on the host, codes moved to the device
    pairs = gpu_hpi.prepare_pairs(*arrays, p.group_float(), n_periods=p.n_periods, backend=backend)
    table = gpu_hpi.build_cell_table(pairs, backend, chunk_size=chunk_size)
    assert sum(table.dropped.values()) > 0
    return table


@pytest.mark.parametrize("ids", ["labels", "codes", "large_range"])
def test_cell_table_with_device_group_ids(gpu: gpu_hpi.Backend, path: str, ids: str) -> None:
    p = random_problem(np.random.default_rng(2), invalid=False)
    group = p.group_int()
    if ids == "codes":
        group = np.searchsorted(np.unique(group), group).astype(np.int32)
    elif ids == "large_range":
        group = np.where(group == 11110, 2**40, group)
    host, device = tables(p, gpu, group, cupy.asarray(group))
    assert_tables_equal(device, host, rtol=1e-12)


def test_merged_and_pooled_tables(gpu: gpu_hpi.Backend) -> None:
    p = random_problem(np.random.default_rng(3))
    half = p.n_pairs // 2
    parts = []
    for part in (p.take(np.arange(half)), p.take(np.arange(half, p.n_pairs))):
        pairs = gpu_hpi.prepare_pairs(*on_device(part), part.group_float(), n_periods=p.n_periods, backend=gpu)
        parts.append(gpu_hpi.build_cell_table(pairs, gpu))
    merged = gpu_hpi.merge_tables(parts)
    assert isinstance(merged.count, cupy.ndarray)
    host, _ = tables(p, gpu, p.group_float(), p.group_float())
    assert_tables_equal(merged.to_host(), host, rtol=1e-12)
    assert_tables_equal(merged.pooled().to_host(), host.pooled(), rtol=1e-12)


@pytest.mark.parametrize("base_period", [0, 6])
@pytest.mark.parametrize("solver", ["normal", "lsqr", "lsmr"])
def test_index_equals_numpy_backend(gpu: gpu_hpi.Backend, solver: str, base_period: int) -> None:
    p = random_problem(np.random.default_rng(4))
    options: dict[str, Any] = {"n_periods": p.n_periods, "solver": solver, "base_period": base_period}
    want = gpu_hpi.estimate_index(p.prev, p.recent, p.y, p.group_float(), backend=CPU, **options)
    got = gpu_hpi.estimate_index(*on_device(p), p.group_float(), backend=gpu, **options)
    atol, se_rtol = TOLERANCE[solver]
    assert list(got.groups) == list(want.groups)
    assert isinstance(got.log_index, np.ndarray)
    np.testing.assert_array_equal(np.isnan(got.log_index), np.isnan(want.log_index))
    np.testing.assert_allclose(got.log_index, want.log_index, atol=atol, rtol=0, equal_nan=True)
    np.testing.assert_allclose(got.se, want.se, rtol=se_rtol, atol=0, equal_nan=True)
    np.testing.assert_allclose(got.sigma2, want.sigma2, rtol=se_rtol, equal_nan=True)
    for name in ("period_pairs", "n_pairs", "n_used", "n_params", "skipped"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    if solver != "normal":
        assert got.solver_info["groups"]["iterations"] > 0
    ref = reference_index(p.prev, p.recent, p.y, p.group_float(), n_periods=p.n_periods, base_period=base_period)
    assert_matches_reference(got, ref, atol=atol, se_rtol=se_rtol, stat_rtol=se_rtol)


@pytest.mark.parametrize("solver", ["normal", "lsqr"])
@backend_parity(atol=1e-8, rtol=1e-6)
def test_device_integer_groups_and_no_groups(backend: gpu_hpi.Backend, solver: str) -> Any:
    p = random_problem(np.random.default_rng(5), invalid=False)
    results = []
    for group in (p.group_int(), None):
        arrays = [backend.asarray(a) for a in (p.prev, p.recent, p.y)]
        on_backend = None if group is None else backend.asarray(group)
        results.append(
            gpu_hpi.estimate_index(*arrays, on_backend, n_periods=p.n_periods, backend=backend, solver=solver)
        )
    return results


def test_strict_on_the_device(gpu: gpu_hpi.Backend) -> None:
    p = random_problem(np.random.default_rng(6))
    with pytest.raises(gpu_hpi.DataError, match="strict"):
        gpu_hpi.estimate_index(*on_device(p), p.group_float(), n_periods=p.n_periods, backend=gpu, strict=True)


def seed_schema_file(tmp_path: Any) -> Any:
    """50,000 pairs in the seed's schema (every 97th earlier date missing), 7,000-row row groups."""
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 50_000
    prev = rng.integers(0, 100, n)
    recent = prev + rng.integers(1, 23, n)
    month = np.datetime64("2014-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": rng.integers(0, 5, n),
            "PrevYearMonth": (month + prev).astype("datetime64[ns]") + np.timedelta64(3, "D"),
            "RecentYearMonth": (month + recent).astype("datetime64[ns]"),
            "LogPriceDiff": rng.normal(size=n),
        }
    )
    frame.loc[::97, "PrevYearMonth"] = pd.NaT
    path = tmp_path / "pairs.parquet"
    frame.to_parquet(path, row_group_size=7_000)
    return path


SEED_COLUMNS = {"group": "group_id", "prev": "PrevYearMonth", "recent": "RecentYearMonth", "y": "LogPriceDiff"}


def device_library() -> Any:
    """pylibcudf, or a skip where the device reader cannot run."""
    from gpu_hpi.io import device

    if device.library() is None:
        pytest.skip("pylibcudf is not installed (or GPU_HPI_CUDF=0)")
    return device.library()


@pytest.mark.parametrize("periodicity", ["month", "quarter", "week"])
def test_device_reader_matches_pyarrow_reader(gpu: gpu_hpi.Backend, tmp_path: Any, periodicity: str) -> None:
    """The pylibcudf parquet path (libcudf's calendar and day arithmetic) gives the pyarrow path's
    batches, weeks included."""
    device_library()
    from gpu_hpi.io.pairs import PairSource

    n = 50_000
    path = seed_schema_file(tmp_path)
    source = PairSource(path=str(path), format="auto", columns=SEED_COLUMNS, batch_rows=20_000, periodicity=periodicity)

    def collect(gpu_flag: bool) -> dict[str, np.ndarray]:
        batches = list(source.batches(gpu=gpu_flag))
        out: dict[str, Any] = {"prev": [], "recent": [], "y": [], "group": []}
        for b in batches:
            prev, recent = b.periods_from(0)
            out["prev"].append(cupy.asnumpy(prev))
            out["recent"].append(cupy.asnumpy(recent))
            out["y"].append(cupy.asnumpy(b.y))
            group = b.group if not isinstance(b.group, GroupCodes) else b.group.labels[cupy.asnumpy(b.group.codes)]
            out["group"].append(cupy.asnumpy(group))
        merged = {k: np.concatenate(v) for k, v in out.items()}
        merged["missing"] = np.asarray(sum(b.missing_period for b in batches))
        return merged

    device, host = collect(True), collect(False)
    assert isinstance(next(iter(source.batches(gpu=True))).y, cupy.ndarray)
    for key in ("prev", "recent", "group", "missing"):
        np.testing.assert_array_equal(device[key], host[key])
    np.testing.assert_array_equal(device["y"], host["y"])
    assert int(host["missing"]) == len(range(0, n, 97))


def test_device_reads_are_sized_by_the_device_budget(gpu: gpu_hpi.Backend, tmp_path: Any) -> None:
    """One read of the whole file where the budget allows, else row-group sets within it; the
    batches hold the same pairs either way, and the pipeline's budget reads the file at once."""
    device_library()
    from gpu_hpi.backend.memory import device_read_budget
    from gpu_hpi.io.files import decoded_row_bytes, parquet_file
    from gpu_hpi.io.pairs import PairSource

    path = seed_schema_file(tmp_path)
    row = decoded_row_bytes(parquet_file(str(path)).schema_arrow, SEED_COLUMNS)

    def batches(budget: int) -> list[Any]:
        source = PairSource(str(path), "auto", SEED_COLUMNS, batch_rows=1000, device_read_bytes=budget)
        assert source.reads_on_device(True)
        return list(source.batches(gpu=True))

    whole = batches(device_read_budget(gpu))
    sets = batches(14_000 * row)  # two 7,000-row row groups a read
    assert len(whole) == 1 and len(sets) == 4
    start = whole[0].bounds[0]
    for k in range(2):  # prev, recent
        got = np.concatenate([cupy.asnumpy(b.periods_from(start)[k]) for b in sets])
        np.testing.assert_array_equal(cupy.asnumpy(whole[0].periods_from(start)[k]), got)
    np.testing.assert_array_equal(cupy.asnumpy(whole[0].y), np.concatenate([cupy.asnumpy(b.y) for b in sets]))
    assert whole[0].missing_period == sum(b.missing_period for b in sets) > 0


def test_device_pipeline_equals_the_cpu_on_pairs_and_sales(gpu: gpu_hpi.Backend, tmp_path: Any) -> None:
    """The job on backend=gpu (the device reader, the fused kernel, the host solve) gives
    backend=cpu's index, standard errors and drop counts, for pairs and for sale records."""
    device_library()
    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers import run_app
    from sales_reference import random_sales

    pairs = seed_schema_file(tmp_path)
    df = random_sales(52)
    sales = tmp_path / "sales.parquet"
    pq.write_table(pa.Table.from_pandas(df[["a", "b", "date", "price", "group"]], preserve_index=False), sales)
    jobs = {
        "pairs": ["data=pairs", f"data.path={pairs}"],
        "pairs-accuracy": ["data=pairs", f"data.path={pairs}", "diagnostics.accuracy_folds=3"],
        "sales": ["data=transactions", f"data.path={sales}", "data.columns.property=[a,b]", "data.columns.group=group"],
        "sales-filters": [
            "data=transactions",
            f"data.path={sales}",
            "data.columns.property=[a,b]",
            "data.columns.group=group",
            "data.max_holding=30",
            "data.max_annual_return=1.0",
            "data.max_robust_z=3",
        ],
    }
    for name, overrides in jobs.items():
        runs = {b: run_app(tmp_path, *overrides, f"backend={b}", name=f"{name}-{b}").ok() for b in ("gpu", "cpu")}
        got, want = (runs[b].frame for b in ("gpu", "cpu"))
        np.testing.assert_allclose(got["log_index"], want["log_index"], rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(got["se"], want["se"], rtol=1e-8, atol=1e-12, err_msg=name)
        assert runs["gpu"].summary["dropped"] == runs["cpu"].summary["dropped"], name
        assert runs["gpu"].summary["backend"] == "gpu"
        if "accuracy" in name:  # the statistics computed on the device, as on the host
            import pandas as pd

            got, want = (pd.read_csv(runs[b].dir / "accuracy.csv") for b in ("gpu", "cpu"))
            for column in ("mean_abs_error", "median_abs_error", "rmse", "n_scored", "n_unscored"):
                np.testing.assert_allclose(got[column], want[column], rtol=1e-10, err_msg=column)


# --------------------------------------------------------------------------------------------------
# index methods: the device fit of each method equals the numpy backend's

METHOD_OPTIONS = {
    "case_shiller": gpu_hpi.MethodOptions(name="case_shiller"),
    "case_shiller_absolute": gpu_hpi.MethodOptions(name="case_shiller", stage2="absolute", quadratic=True),
    "robust": gpu_hpi.MethodOptions(name="robust", tol=1e-12, max_iter=200),
    "arithmetic": gpu_hpi.MethodOptions(name="arithmetic"),
    "arithmetic_weighted": gpu_hpi.MethodOptions(name="arithmetic", interval_weights=True, quadratic=True),
}


def priced_problem(seed: int) -> tuple[Problem, np.ndarray, np.ndarray]:
    """A random problem (invalid pairs, unidentified periods, a skipped group) with 5% gross outliers in y
    and sale prices consistent with y, a few of them invalid (0)."""
    p = random_problem(np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    outliers = rng.choice(p.n_pairs, size=p.n_pairs // 20, replace=False)
    p.y[outliers] += rng.choice([-1.0, 1.0], size=len(outliers))
    p0 = np.exp(rng.normal(12.5, 0.5, size=p.n_pairs))
    with np.errstate(invalid="ignore", over="ignore"):
        p1 = p0 * np.exp(p.y)
    p0[rng.choice(np.flatnonzero(np.isfinite(p1)), size=10, replace=False)] = 0.0
    return p, p0, p1


@pytest.mark.parametrize("name", list(METHOD_OPTIONS))
def test_methods_equal_numpy_backend(gpu: gpu_hpi.Backend, path: str, name: str) -> None:
    p, p0, p1 = priced_problem(13)
    options: dict[str, Any] = {"n_periods": p.n_periods, "method": METHOD_OPTIONS[name], "base_period": 3}
    want = gpu_hpi.estimate_index(
        p.prev, p.recent, p.y, p.group_float(), backend=CPU, price_prev=p0, price_recent=p1, **options
    )
    got = gpu_hpi.estimate_index(
        *on_device(p),
        p.group_float(),
        backend=gpu,
        price_prev=cupy.asarray(p0),
        price_recent=cupy.asarray(p1),
        **options,
    )
    assert list(got.groups) == list(want.groups)
    assert isinstance(got.log_index, np.ndarray) and isinstance(got.se, np.ndarray)
    assert np.isfinite(want.log_index).sum() > 20 and np.isnan(want.log_index).any()
    np.testing.assert_array_equal(np.isnan(got.log_index), np.isnan(want.log_index))
    np.testing.assert_array_equal(np.isnan(got.se), np.isnan(want.se))
    np.testing.assert_allclose(got.log_index, want.log_index, atol=1e-9, rtol=0, equal_nan=True)
    np.testing.assert_allclose(got.se, want.se, rtol=1e-7, atol=0, equal_nan=True)
    np.testing.assert_allclose(got.sigma2, want.sigma2, rtol=1e-7, equal_nan=True)
    for name_ in ("period_pairs", "n_pairs", "n_used", "n_params", "skipped"):
        np.testing.assert_array_equal(getattr(got, name_), getattr(want, name_), err_msg=name_)
    for solve in ("groups", "pooled"):
        g, w = got.solver_info[solve], want.solver_info[solve]
        assert g["method"] == w["method"] == METHOD_OPTIONS[name].name
        if "stage2_coef" in w:
            coef = np.asarray(w["stage2_coef"])
            np.testing.assert_allclose(g["stage2_coef"], coef, rtol=1e-7, atol=1e-9 * np.abs(coef).max())
        if name == "robust":
            assert g["converged"] and w["converged"] and abs(g["iterations"] - w["iterations"]) <= 1
            np.testing.assert_allclose(g["scale"], w["scale"], rtol=1e-7)


# --------------------------------------------------------------------------------------------------
# transactions: make_pairs on CuPy arrays equals the numpy backend's


@pytest.mark.parametrize("pairing", ["consecutive", "all"])
@pytest.mark.parametrize("rules", ["none", "all_filters", "robust_z"])
@backend_parity(atol=1e-12, rtol=0)
def test_make_pairs_on_the_device_equals_numpy(backend: gpu_hpi.Backend, pairing: str, rules: str) -> Any:
    from sales_reference import RULES, START, random_sales, sales_from_frame

    from gpu_hpi.data.pair_filters import PairingRules
    from gpu_hpi.data.pairing import make_pairs

    sales, _ = sales_from_frame(random_sales(41, n_props=3000), ["a", "b", "c"], START, 48)
    columns = ("key", "period", "order", "price", "group")
    on_backend = replace(sales, **{name: backend.asarray(getattr(sales, name)) for name in columns})
    made = make_pairs(on_backend, PairingRules(pairing=pairing, **RULES[rules]), backend)
    assert isinstance(made.y, backend.xp.ndarray)
    assert sum(made.dropped.values()) > 0 and made.n_pairs > 1000
    return made


@pytest.mark.parametrize("period_type", [np.int16, np.int32])
@pytest.mark.parametrize("y_type", [np.float32, np.float64])
@pytest.mark.parametrize("n_groups, n_periods", [(1, 123), (17, 123), (250, 123), (17, 300)])
def test_fused_kernel_equals_bincount(
    gpu: gpu_hpi.Backend, monkeypatch: pytest.MonkeyPatch, period_type: Any, y_type: Any, n_groups: int, n_periods: int
) -> None:
    """The fused cell-table kernel (gpu_hpi/data/kernels.py) gives the bincount path's table: counts and
    drop counts exactly, sums to rounding; invalid pairs of every reason included."""
    rng = np.random.default_rng(n_groups * n_periods)
    n = 400_000
    prev = rng.integers(-2, n_periods, n)
    recent = prev + rng.integers(-1, 40, n)
    y = rng.normal(0, 0.2, n)
    y[::1001] = np.nan
    group = rng.integers(0, n_groups, n)
    group[::997] = -1  # missing group codes
    arrays = [cupy.asarray(a) for a in (prev.astype(period_type), recent.astype(period_type), y.astype(y_type))]
    codes = cupy.asarray(group.astype(np.int32))
    pairs = gpu_hpi.Pairs(*arrays, codes, np.arange(n_groups), n_periods)
    monkeypatch.setenv("GPU_HPI_FUSED_KERNEL", "0")
    expected = gpu_hpi.build_cell_table(pairs, gpu).to_host()
    monkeypatch.setenv("GPU_HPI_FUSED_KERNEL", "1")
    fused = gpu_hpi.build_cell_table(pairs, gpu).to_host()
    assert fused.dropped == expected.dropped and set(fused.dropped) == {
        "missing_group",
        "period_out_of_range",
        "same_period",
        "prev_not_before_recent",
        "nonfinite_y",
    }
    for name in ("group", "prev", "recent", "count"):
        np.testing.assert_array_equal(getattr(fused, name), getattr(expected, name))
    np.testing.assert_allclose(fused.sum_y, expected.sum_y, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fused.sum_y2, expected.sum_y2, rtol=1e-9, atol=1e-9)


def test_asarray_through_pinned_memory(gpu: gpu_hpi.Backend) -> None:
    """Large host arrays reach the device through a pinned buffer, with the same values and dtype."""
    rng = np.random.default_rng(3)
    for a in (rng.normal(size=1 << 20), rng.integers(0, 1000, 1 << 21).astype(np.int32), np.arange(10)):
        got = gpu.asarray(a)
        assert isinstance(got, cupy.ndarray) and got.dtype == a.dtype
        np.testing.assert_array_equal(cupy.asnumpy(got), a)
    strided = rng.normal(size=(1 << 19, 3))[:, 1]  # not contiguous
    np.testing.assert_array_equal(cupy.asnumpy(gpu.asarray(strided, dtype=np.float32)), strided.astype(np.float32))


@pytest.mark.parametrize("n_columns", [37, 2074, 7000])  # 7000: beyond a block's shared memory, bincount
def test_dummy_matrix_kernels_equal_numpy(gpu: gpu_hpi.Backend, n_columns: int) -> None:
    from gpu_hpi.data import kernels

    rng = np.random.default_rng(20)
    m = 100_003
    prev = rng.integers(0, n_columns + 1, m).astype(np.int32)  # n_columns: the padding column
    recent = rng.integers(0, n_columns + 1, m).astype(np.int32)
    x, u = rng.normal(size=n_columns), rng.normal(size=m)
    got = kernels.pair_differences(cupy.asarray(x), cupy.asarray(prev), cupy.asarray(recent))
    np.testing.assert_array_equal(got.get(), kernels.pair_differences(x, prev, recent))
    got = kernels.column_sums(cupy.asarray(u), cupy.asarray(prev), cupy.asarray(recent), n_columns)
    np.testing.assert_allclose(got.get(), kernels.column_sums(u, prev, recent, n_columns), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("operator", ["implicit", "matrix"])
@pytest.mark.parametrize("solver", ["lsqr", "lsmr"])
def test_iterative_operators_on_the_device_equal_the_exact_solve(
    gpu: gpu_hpi.Backend, solver: str, operator: str
) -> None:
    p = random_problem(np.random.default_rng(7), n_periods=20, pairs_per_group=400, noise=0.2)
    options: dict[str, Any] = {"n_periods": p.n_periods, "base_period": 2}
    want = gpu_hpi.estimate_index(p.prev, p.recent, p.y, p.group_float(), backend=CPU, **options)
    got = gpu_hpi.estimate_index(
        *on_device(p), p.group_float(), backend=gpu, solver=solver, operator=operator, **options
    )
    np.testing.assert_array_equal(np.isnan(got.log_index), np.isnan(want.log_index))
    assert np.nanmax(np.abs(got.log_index - want.log_index)) <= 1e-10


def test_device_sale_reader_pairs_as_the_host(gpu: gpu_hpi.Backend, tmp_path: Any) -> None:
    """Sale records read and paired by libcudf (io/device_sales.py) give the host reader's and
    make_pairs' counts and pairs; ns stored as ms refused by both device readers."""
    plc = device_library()
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sales_reference import START, assert_same_pairs, made_frame, random_sales

    from gpu_hpi.data.pair_filters import PairingRules
    from gpu_hpi.data.pairing import make_pairs
    from gpu_hpi.errors import DataError
    from gpu_hpi.io import device
    from gpu_hpi.io.device_sales import pair_sales, read_sales
    from gpu_hpi.io.pairs import PairSource
    from gpu_hpi.io.sales import SaleSource

    ops = device.Ops(plc)
    df = random_sales(51)
    df["date"] = df["date"] + pd.to_timedelta(np.random.default_rng(3).integers(0, 86400, len(df)), unit="s")
    keys = ["a", "b", "c"]
    path = tmp_path / "sales.parquet"
    pq.write_table(pa.Table.from_pandas(df[[*keys, "date", "price", "group"]], preserve_index=False), path)
    source = SaleSource(str(path), "auto", keys, "date", "price", "group")
    assert source.reads_on_device(gpu=True)
    host, read = source.read(), source.read_device()
    assert (read.n_sales, read.n_missing_date, read.dropped) == (host.n_sales, host.n_missing_date, host.dropped)
    columns = ("group", "prev", "recent", "price_prev", "price_recent", "y")
    for options in ({"pairing": "consecutive"}, {"pairing": "all", "max_annual_return": 1.5, "max_robust_z": 3.0}):
        rules = PairingRules(**options)
        want = make_pairs(host.to_sales(CPU, START, 48), rules, CPU)
        got = pair_sales(ops, read, rules, START, 48)
        assert isinstance(got.y, cupy.ndarray)
        assert got.dropped == want.dropped
        host_got = replace(got, **{k: cupy.asnumpy(getattr(got, k)) for k in columns})
        assert_same_pairs(made_frame(host_got, START), made_frame(want, START))

    ns = (np.datetime64("2014-01", "M") + np.arange(1000) % 120).astype("datetime64[ns]").astype(np.int64)
    stamps = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"p": np.arange(1000) % 50, "d": stamps, "d1": stamps, "x": np.ones(1000)}), bad)
    with pytest.raises(DataError, match=r"column 'd'.*finer"):
        read_sales(ops, [str(bad)], SaleSource(str(bad), "auto", ["p"], "d", "x"))
    pairs = PairSource(str(bad), "auto", {"prev": "d", "recent": "d1", "y": "x"})
    with pytest.raises(DataError, match=r"column 'd'.*finer"):
        list(pairs.batches(gpu=True))


def test_device_sale_reader_zoned_dates_and_decimal_prices(gpu: gpu_hpi.Backend, tmp_path: Any) -> None:
    """libcudf drops a timestamp's zone and reads decimals as decimals: the device reader still
    gives the host reader's periods (local wall time) and prices."""
    plc = device_library()
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpu_hpi.io import device
    from gpu_hpi.io.sales import SaleSource

    utc = np.array(["2014-01-31T23:30", "2014-02-15T12:00", "2014-06-30T16:00"], dtype="datetime64[us]")
    dates = pa.array(utc.astype(np.int64), pa.int64()).cast(pa.timestamp("us", tz="Asia/Seoul"))
    prices = pa.array([Decimal("100.50"), Decimal("120.25"), Decimal("130.00")], pa.decimal128(12, 2))
    path = tmp_path / "zoned.parquet"
    pq.write_table(pa.table({"p": [1, 1, 1], "date": dates, "price": prices}), path)
    source = SaleSource(str(path), "auto", ["p"], "date", "price")
    host, read = source.read(), source.read_device()
    ops = device.Ops(plc)
    np.testing.assert_array_equal(ops.to_host(read.period), host.period)
    np.testing.assert_array_equal(ops.to_host(read.price), host.price)


def test_frames_on_the_gpu_give_the_cpus_index(gpu: gpu_hpi.Backend) -> None:
    """index_from_pairs / index_from_sales with backend=gpu (a cudf frame, where cudf is installed,
    else the same pyarrow table; a cudf frame read by the device readers in place): the CPU's
    index, standard errors and drop counts."""
    from helpers import seed_pairs
    from sales_reference import random_sales

    pairs = seed_pairs(50_000, seed=12)
    sales = random_sales(4, n_props=2000)
    try:
        import cudf

        pair_frame: Any = cudf.DataFrame.from_arrow(pairs)
        sale_frame: Any = cudf.from_pandas(sales)
    except ImportError:
        pair_frame, sale_frame = pairs, sales
    for make, frame, host in (
        (gpu_hpi.index_from_pairs, pair_frame, pairs),
        (gpu_hpi.index_from_sales, sale_frame, sales),
    ):
        options: dict[str, Any] = {}
        if make is gpu_hpi.index_from_sales:
            options = {"property": ["a", "b", "c"], "date": "date", "price": "price", "group": "group"}
        got = make(frame, backend="gpu", **options)
        want = make(host, backend="cpu", **options)
        if frame is not host:  # a cudf frame stays on the device
            assert got.summary["reader"] == ("device_pairs" if make is gpu_hpi.index_from_pairs else "device_sales")
        np.testing.assert_allclose(got.log_index, want.log_index, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.se, want.se, rtol=1e-7)
        assert got.dropped == want.dropped and got.summary["backend"] == "gpu"
