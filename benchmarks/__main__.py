"""Benchmark suite: `python -m benchmarks [--sizes 1M,10M,150M] [--cases ...]`.

Each case runs in a fresh subprocess (with NUMPY_MADVISE_HUGEPAGE=0 unless set, as `python -m gpu_hpi`
sets it) on the same synthetic market (T = 123, 17 groups) and
reports wall time of the timed region and the peak resident memory the region added on top of
its inputs (sampled from /proc every 5 ms). The seed's lil_matrix loop runs at a small size and is
extrapolated linearly (labelled so). `--fork` (smoke runs, as the test suite's) forks each case
from this process instead, its imports done once: no figure of such a run is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CASES = (
    "normal",
    "lsqr",
    "lsmr",
    "lsqr_implicit",
    "lsmr_implicit",
    "lsqr_matrix",
    "lsmr_matrix",
    "seed_loop",
    "dense_lstsq",
    "cli_parquet",
    "transactions",
    "cells",
    "revision",
    "revision_refits",
    "diagnostics",
    "regions",
    "revision_regions",
    "charts",
    "duckdb_pairs",
    "sales_sql",
    "sales_sql_kept",
    "duckdb_sales",
    "frame_pairs",
    "sweep",
)
# lsqr / lsmr with the default operator (auto), and with each operator named
ITERATIVE = {
    f"{s}{suffix}": (s, op)
    for s in ("lsqr", "lsmr")
    for suffix, op in (("", "auto"), ("_implicit", "implicit"), ("_matrix", "matrix"))
}
DATA_DIR = Path(os.environ.get("GPU_HPI_BENCH_DATA", "bench-data"))
PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}.get(text[-1], 1)
    return int(float(text.rstrip("KMBG")) * scale)


class PeakRss:
    """Peak resident set size while the block runs, sampled every 5 ms (Linux /proc)."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())


def timed(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """(fn's value, seconds, peak RSS added) of one call."""
    with PeakRss() as mem:
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
    return value, seconds, mem.peak - mem.start


def row(case: str, n: int, seconds: float, extra_rss: int | None, inputs: int | None, device: str) -> dict[str, Any]:
    return {
        "case": case,
        "n": n,
        "seconds": seconds,
        "extra_rss": extra_rss,
        "inputs": inputs,
        "backend": "cpu",
        "device": device,
    }


def market_arrays(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from gpu_hpi.synthetic import SyntheticMarket

    return SyntheticMarket.create(n, 123, 17, seed=1).arrays()


def run_case(case: str, n: int, backend: str, parts: int = 1, tol: float | None = None) -> dict[str, Any]:
    """Run one case in this process; returns its measurements."""
    import gpu_hpi

    if case == "cli_parquet":
        return cli_parquet(n, parts)
    if case == "transactions":
        return transactions_case(n)
    if case == "cells":
        return cells_case(n)
    if case in ("revision", "revision_refits"):
        return revision_case(n, refits=case == "revision_refits")
    if case == "diagnostics":
        return diagnostics_case(n)
    if case == "regions":
        return regions_case(n)
    if case == "revision_regions":
        return revision_regions_case(n)
    if case == "charts":
        return charts_case(n)
    if case == "duckdb_pairs":
        return duckdb_pairs(n, parts)
    if case in ("sales_sql", "sales_sql_kept"):
        return sales_sql(n, keep_pairs=case == "sales_sql_kept")
    if case == "duckdb_sales":
        return duckdb_sales(n)
    if case == "frame_pairs":
        return frame_pairs(n)
    if case == "sweep":
        return sweep_case(n)

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    solver, operator = ITERATIVE.get(case, ("normal", "auto"))
    group, prev, recent, y = market_arrays(n)
    inputs = group.nbytes + prev.nbytes + recent.nbytes + y.nbytes
    be = gpu_hpi.resolve_backend(backend)
    if be.is_gpu:  # the timed region starts with the data on the device
        group, prev, recent, y = (be.asarray(a) for a in (group, prev, recent, y))
    # warm up: lazy imports, and on the GPU the first-use kernel compilation
    gpu_hpi.estimate_index(
        prev[:20000],
        recent[:20000],
        y[:20000],
        group[:20000],
        n_periods=123,
        backend=be,
        solver=solver,
        operator=operator,
        min_pairs=1,
    )
    fn: Callable[[], Any]
    if case in ITERATIVE or case == "normal":

        def fn() -> Any:
            tolerance = {} if tol is None or case not in ITERATIVE else {"tol": tol}
            return gpu_hpi.estimate_index(
                prev, recent, y, group, n_periods=123, backend=be, solver=solver, operator=operator, **tolerance
            )
    elif case == "seed_loop":
        fn = lambda: seed_loop(prev, recent, y)  # noqa: E731
    elif case == "dense_lstsq":
        fn = lambda: dense_lstsq(prev, recent, y)  # noqa: E731
    else:
        raise SystemExit(f"unknown case {case}")
    with PeakRss() as mem:
        start = time.perf_counter()
        result = fn()
        be.synchronize()
        seconds = time.perf_counter() - start
    if case in ITERATIVE:  # steps, and the distance from the exact solve
        exact = gpu_hpi.estimate_index(prev, recent, y, group, n_periods=123, backend=be)
        gap = float(np.nanmax(np.abs(result.log_index - exact.log_index)))
        at = "" if tol is None else f", tol {tol:g}"
        case += f" ({result.solver_info['groups']['iterations']} steps{at}, {gap:.1e} from normal)"
    return {
        "case": case,
        "n": n,
        "seconds": seconds,
        "extra_rss": mem.peak - mem.start,
        "inputs": inputs,
        "backend": be.name,
        "device": be.device,
    }


def seed_parquet(n: int, parts: int = 1) -> Path:
    """A parquet file (or a directory of `parts` files) of n synthetic pairs in the seed's schema:
    int64 group_id, month timestamps, float64 LogPriceDiff; made once and cached in DATA_DIR."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpu_hpi.synthetic import SyntheticMarket

    path = DATA_DIR / (f"seed-{n}.parquet" if parts == 1 else f"seed-{n}-{parts}parts")
    if path.exists():
        return path
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    if parts > 1:
        tmp.mkdir(parents=True, exist_ok=True)
    per_part = -(-n // parts)
    month = np.datetime64("2014-01", "M")
    writer = None
    part = 0
    written = 0
    market = SyntheticMarket.create(n, 123, 17, seed=1)
    for group, prev, recent, y in market.pairs():
        table = pa.table(
            {
                "group_id": group.astype(np.int64),
                "PrevYearMonth": (month + prev.astype(np.int64)).astype("datetime64[ns]"),
                "RecentYearMonth": (month + recent.astype(np.int64)).astype("datetime64[ns]"),
                "LogPriceDiff": y,
            }
        )
        if writer is None:
            target = tmp / f"part-{part:03d}.parquet" if parts > 1 else tmp
            writer = pq.ParquetWriter(target, table.schema)
        writer.write_table(table, row_group_size=1 << 20)
        written += table.num_rows
        if parts > 1 and written >= per_part * (part + 1):
            writer.close()
            writer, part = None, part + 1
    if writer is not None:
        writer.close()
    tmp.rename(path)
    return path


def cli_parquet(n: int, parts: int) -> dict[str, Any]:
    """`python -m gpu_hpi` end to end on a seed-schema parquet: wall time and the child's peak RSS."""
    import resource
    import tempfile

    path = seed_parquet(n, parts)
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            "-m",
            "gpu_hpi",
            "data=pairs",
            f"data.path={path}",
            f"hydra.run.dir={out}",
            "output.plot=false",
            "diagnostics.revision=false",
            "progress=false",
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        summary = json.loads((Path(out) / "summary.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "case": "cli_parquet" + (f" ({parts} files)" if parts > 1 else ""),
        "n": n,
        "seconds": seconds,
        "extra_rss": peak,
        "inputs": path_size(path),
        "backend": summary["backend"],
        "device": summary["device"],
        "stages": summary["timings_s"],
    }


def frame_pairs(n: int, repeats: int = 3) -> dict[str, Any]:
    """gpu_hpi.index_from_pairs on cli_parquet's pairs already in memory (a pyarrow Table) against
    the command line's stages (all but its start-up) on the same pairs in the file, in one process
    after a warm-up: best of `repeats` each."""
    import warnings

    import pyarrow.parquet as pq

    import gpu_hpi

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    path = seed_parquet(n, 1)
    table = pq.read_table(path)
    gpu_hpi.index_from_pairs(table.slice(0, 20_000), backend="cpu")  # warm-up: imports, Hydra
    overrides = ["data=pairs", f"data.path={path}", "backend=cpu", "output.plot=false", "progress=false"]
    frame_s, cli_s = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        gpu_hpi.index_from_pairs(table, backend="cpu")
        frame_s.append(time.perf_counter() - start)
        cli_s.append(sum(v for k, v in gpu_hpi.run(overrides).summary["timings_s"].items() if k != "startup"))
    seconds = min(frame_s)
    return {
        **row(
            f"frame_pairs ({seconds / min(cli_s):.2f}x the CLI's stages, {min(cli_s):.2f} s)",
            n,
            seconds,
            None,
            None,
            "",
        ),
        "device": gpu_hpi.resolve_backend("cpu").device,
    }


def sweep_case(n: int) -> dict[str, Any]:
    """`python -m gpu_hpi -m` over 2 methods x 3 base periods (6 jobs, one read shared) against one
    job alone, both end to end on cli_parquet's pairs."""
    import tempfile

    path = seed_parquet(n, 1)
    common = ["data=pairs", f"data.path={path}", "output.plot=false", "progress=false"]
    walls = []
    with tempfile.TemporaryDirectory() as out:
        for flags, extra in (
            ([], [f"hydra.run.dir={out}/one"]),
            (
                ["-m"],
                ["method=bmn,case_shiller", "index.base_period=2014-01,2017-11,2020-01", f"hydra.sweep.dir={out}/sw"],
            ),
        ):
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "gpu_hpi", *flags, *common, *extra]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
        reused = sum(bool(json.loads(p.read_text()).get("reused_read")) for p in Path(out, "sw").glob("*/summary.json"))
    case = f"sweep (6 jobs, {reused} reused the read: {walls[1] / walls[0]:.2f}x one job's {walls[0]:.1f} s)"
    return row(case, n, walls[1], None, path_size(path), "")


def sales_parquet(n: int) -> Path:
    """n synthetic sale records (property_id, date, price, group_id; ~3 sales a property over 123
    months from 2014-01), made once and cached in DATA_DIR."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = DATA_DIR / f"sales-{n}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer = None
    trend = np.cumsum(np.random.default_rng(0).normal(0.003, 0.01, 123))
    for k, start in enumerate(range(0, n, 10_000_000)):
        m = min(10_000_000, n - start)
        rng = np.random.default_rng([7, k])
        prop = rng.integers(0, max(n // 3, 1), m)
        month = rng.integers(0, 123, m)
        day = (np.datetime64("2014-01", "M") + month).astype("datetime64[D]") + rng.integers(0, 28, m)
        quality = np.random.default_rng(prop % 1_000_003).normal(0, 0.5, m)  # a property's own level
        price = np.exp(19.5 + quality + trend[month] + rng.normal(0, 0.1, m))
        table = pa.table({"property_id": prop, "date": day, "price": price, "group_id": (prop % 17).astype(np.int32)})
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=1 << 20)
    if writer is not None:
        writer.close()
    tmp.rename(path)
    return path


def transactions_case(n: int) -> dict[str, Any]:
    """Sale records from parquet to pairs (read + pairing, consecutive), in this process."""
    import gpu_hpi
    from gpu_hpi.data.pair_filters import PairingRules
    from gpu_hpi.data.pairing import make_pairs
    from gpu_hpi.io.sales import SaleSource

    path = sales_parquet(n)
    be = gpu_hpi.resolve_backend("cpu")

    def pair() -> Any:
        raw = SaleSource(str(path), "auto", ["property_id"], "date", "price", "group_id").read()
        first = int(raw.period.min())
        return make_pairs(raw.to_sales(be, first, int(raw.period.max()) - first + 1), PairingRules(), be)

    made, seconds, extra = timed(pair)
    return row(f"transactions -> {made.n_pairs:,} pairs", n, seconds, extra, path_size(path), be.device)


def sales_sql(n: int, keep_pairs: bool = False) -> dict[str, Any]:
    """The CLI's read_and_pair stage on the CPU: the sales of sales_parquet paired by DuckDB's sort
    and the array code (gpu_hpi.io.sql_sales), consecutive pairs; bmn's cell table alone, or
    (keep_pairs) the pairs kept in memory with the robust z filter (|z| <= 5), as robust fits,
    iterative solvers and the accuracy study read them."""
    import duckdb

    from gpu_hpi.data.pair_filters import PairingRules
    from gpu_hpi.io.sales import SaleSource
    from gpu_hpi.io.sql_sales import sql_sales

    path = sales_parquet(n)
    source = SaleSource(str(path), "auto", ["property_id"], "date", "price", "group_id")
    rules = PairingRules(max_robust_z=5.0) if keep_pairs else PairingRules()
    paired, seconds, extra = timed(lambda: sql_sales(source, rules, None, None, keep_pairs, prices=False))
    assert paired is not None
    kept = " kept, robust z <= 5" if keep_pairs else " -> table"
    case = f"sales -> {paired.n_pairs:,} pairs{kept} (sql_sales)"
    return row(case, n, seconds, extra, path_size(path), f"DuckDB {duckdb.__version__}")


def duckdb_sales(n: int) -> dict[str, Any]:
    """The plain DuckDB pairing query on sales_parquet (the last sale of a property in a month by
    date, lag over the property, grouped into cells): the bar sales_sql is held to."""
    import duckdb

    path = sales_parquet(n)
    month = "(year(date) - 2014) * 12 + month(date) - 1"
    query = f"""
        WITH last AS (
            SELECT property_id, {month} AS t, price, group_id FROM read_parquet('{path}')
            QUALIFY row_number() OVER (PARTITION BY property_id, {month} ORDER BY date DESC) = 1),
        pairs AS (
            SELECT group_id, lag(t) OVER w AS i, t AS j, ln(price / lag(price) OVER w) AS y
            FROM last WINDOW w AS (PARTITION BY property_id ORDER BY t))
        SELECT group_id, i, j, count(*) n, sum(y) s1, sum(y * y) s2 FROM pairs WHERE i IS NOT NULL GROUP BY ALL
    """
    con = duckdb.connect()
    cells, seconds, extra = timed(lambda: con.sql(query).to_arrow_table())
    case = f"DuckDB pairing query ({cells.num_rows:,} cells)"
    return row(case, n, seconds, extra, path_size(path), f"DuckDB {duckdb.__version__}")


def cells_case(n: int) -> dict[str, Any]:
    """The cell table of n pairs: its parquet size and the time to load it back."""
    import tempfile

    import gpu_hpi
    from gpu_hpi.data.calendar import Calendar
    from gpu_hpi.io.store import load_cells, save_cells

    group, prev, recent, y = market_arrays(n)
    be = gpu_hpi.resolve_backend("cpu")
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=123, backend=be), be)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cells.parquet"
        save_cells(table, Calendar("month", 2014 * 12, 123), path)
        load_cells(str(path))  # warm the imports
        with PeakRss() as mem:
            start = time.perf_counter()
            loaded, _ = load_cells(str(path))
            seconds = time.perf_counter() - start
        assert loaded.n_pairs == table.n_pairs
        size = path.stat().st_size
    return {
        "case": f"cells.parquet load ({table.n_cells:,} cells)",
        "n": n,
        "seconds": seconds,
        "extra_rss": mem.peak - mem.start,
        "inputs": size,
        "backend": be.name,
        "device": be.device,
    }


def revision_case(n: int, refits: bool) -> dict[str, Any]:
    """The revision study (every vintage of the 17 regional and the pooled index, 123 months) of
    the table of n pairs; refits=True: one fit_index per vintage instead, the way it was done
    before gpu_hpi/analysis/vintages.py (tests/unit/analysis/test_vintages.py checks that both agree)."""
    import gpu_hpi
    from gpu_hpi.analysis.refit import Refit
    from gpu_hpi.analysis.revision import revision

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    group, prev, recent, y = market_arrays(n)
    be = gpu_hpi.resolve_backend("cpu")
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=123, backend=be), be)
    result = gpu_hpi.fit_index(table, backend=be)
    refit = Refit()

    def per_vintage() -> None:
        for tab in refit.tables(table):
            for v in range(1, 123):
                gpu_hpi.fit_index(tab.truncate(v), backend=be, pooled=False)

    revision(table, refit, result)  # warm up
    _, seconds, extra = timed(per_vintage if refits else lambda: revision(table, refit, result))
    case = "revision, refit per vintage" if refits else f"revision ({table.n_cells:,} cells)"
    return row(case, n, seconds, extra, None, be.device)


def diagnostics_case(n: int, repeats: int = 10) -> dict[str, Any]:
    """The "diagnostics" stage of a default run (volatility and the revision study of the 17
    regional and the pooled index, 123 months) on the table of n pairs, after the main fit as in
    the run: the median of `repeats` calls, the first (the run's) in the case's name. With
    --blas-threads 16: the BLAS threads of a 16-core host (on fewer cores, oversubscribed)."""
    import statistics

    import gpu_hpi
    from gpu_hpi.analysis.refit import Refit
    from gpu_hpi.app.report import run_diagnostics
    from gpu_hpi.config import DiagnosticsConfig

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    group, prev, recent, y = market_arrays(n)
    be = gpu_hpi.resolve_backend("cpu")
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=123, backend=be), be)
    result = gpu_hpi.fit_index(table, backend=be)
    cfg, refit = DiagnosticsConfig(), Refit()
    runs = [timed(lambda: run_diagnostics(cfg, result, table, None, refit, be)) for _ in range(repeats)]
    seconds = statistics.median(r[1] for r in runs)
    return row(f"diagnostics (first {runs[0][1]:.3f} s)", n, seconds, max(r[2] for r in runs), None, be.device)


def duckdb_pairs(n: int, parts: int = 1) -> dict[str, Any]:
    """A ten-line DuckDB query on the seed-schema parquet of cli_parquet: the bar
    the CPU reader is held to (compare the cli_parquet case's read_and_table stage)."""
    import duckdb

    path = seed_parquet(n, parts)
    files = f"{path}/*.parquet" if parts > 1 else str(path)
    query = f"""
        SELECT group_id,
               (year(PrevYearMonth) - 2014) * 12 + month(PrevYearMonth) - 1 AS i,
               (year(RecentYearMonth) - 2014) * 12 + month(RecentYearMonth) - 1 AS j,
               count(*) n, sum(LogPriceDiff) s1, sum(LogPriceDiff * LogPriceDiff) s2
        FROM read_parquet('{files}') GROUP BY ALL
    """
    con = duckdb.connect()
    cells, seconds, extra = timed(lambda: con.sql(query).to_arrow_table())
    case = f"DuckDB query ({cells.num_rows:,} cells)"
    return row(case, n, seconds, extra, path_size(path), f"DuckDB {duckdb.__version__}")


def regions_case(n: int, n_groups: int = 10_000) -> dict[str, Any]:
    """Table + exact solve of n pairs over 10,000 regions and 123 months in memory (the sparse cell
    table: most cells hold one pair): uniform regions and first sales, geometric holding."""
    import gpu_hpi

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    group, prev, recent, y = region_pairs(n, n_groups)
    prev, recent = prev.astype(np.int16), recent.astype(np.int16)
    inputs = group.nbytes + prev.nbytes + recent.nbytes + y.nbytes
    be = gpu_hpi.resolve_backend("cpu")
    built: list[float] = []

    def table_and_fit() -> None:
        start = time.perf_counter()
        table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=123, backend=be), be)
        built.append(time.perf_counter() - start)
        gpu_hpi.fit_index(table, backend=be)

    _, seconds, extra = timed(table_and_fit)
    return row(f"{n_groups:,} regions (table {built[0]:.2f} s)", n, seconds, extra, inputs, be.device)


def region_pairs(n: int, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(group, prev, recent, y) of n pairs over n_groups regions and 123 months: uniform regions and
    first sales, geometric holding."""
    rng = np.random.default_rng(0)
    group = rng.integers(0, n_groups, n).astype(np.int32)
    prev = rng.integers(0, 122, n)
    recent = np.minimum(prev + rng.geometric(1 / 30, n), 122)
    return group, prev, recent, rng.normal(0, 0.1, n)


def charts_case(n: int, n_groups: int = 60) -> dict[str, Any]:
    """index.png and regions.png (output.plot_regions: the MAX_PANELS regions with the most pairs)
    of n pairs over 60 regions, as regions_case draws them, after the fit and a first chart (the
    import of matplotlib and its fonts); regions.png's own time in the case's name."""
    import tempfile

    import gpu_hpi
    from gpu_hpi.charts import MAX_PANELS, index_chart, regions_chart

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    group, prev, recent, y = region_pairs(n, n_groups)
    be = gpu_hpi.resolve_backend("cpu")
    result = gpu_hpi.estimate_index(prev, recent, y, group, n_periods=123, backend=be)
    drawn: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        index_chart(result, Path(folder) / "warm.png")

        def both() -> None:
            index_chart(result, Path(folder) / "index.png")
            start = time.perf_counter()
            regions_chart(result, Path(folder) / "regions.png")
            drawn.append(time.perf_counter() - start)

        _, seconds, extra = timed(both)
    panels = min(MAX_PANELS, n_groups)
    return row(f"charts, {panels} panels (regions.png {drawn[0]:.2f} s)", n, seconds, extra, None, be.device)


def revision_regions_case(n: int, n_groups: int = 10_000) -> dict[str, Any]:
    """The "diagnostics" stage (volatility and the revision study: every vintage of each region and
    of the pooled index; then with the default diagnostics.revision_regions) over n pairs in
    10,000 regions and 123 months, as regions_case draws them, after the main fit; the fit's own
    time in the case's name."""
    import gpu_hpi
    from gpu_hpi.analysis.refit import Refit
    from gpu_hpi.app.report import run_diagnostics
    from gpu_hpi.config import DiagnosticsConfig

    warnings.simplefilter("ignore", gpu_hpi.IdentificationWarning)
    group, prev, recent, y = region_pairs(n, n_groups)
    be = gpu_hpi.resolve_backend("cpu")
    table = gpu_hpi.build_cell_table(gpu_hpi.prepare_pairs(prev, recent, y, group, n_periods=123, backend=be), be)
    del group, prev, recent, y
    result, fit_seconds, _ = timed(lambda: gpu_hpi.fit_index(table, backend=be))
    estimated = int((~result.skipped).sum()) - 1  # less the pooled index
    every = DiagnosticsConfig(revision_regions=None)  # the default studies the 1,000 largest
    _, seconds, extra = timed(lambda: run_diagnostics(every, result, table, None, Refit(), be))
    _, default_s, _ = timed(lambda: run_diagnostics(DiagnosticsConfig(), result, table, None, Refit(), be))
    case = (
        f"diagnostics, every one of {estimated:,} of {n_groups:,} regions estimated "
        f"(fit {fit_seconds:.2f} s; the default's 1,000 regions {default_s:.2f} s)"
    )
    return row(case, n, seconds, extra, None, be.device)


def path_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*")) if path.is_dir() else path.stat().st_size


def seed_loop(prev: np.ndarray, recent: np.ndarray, y: np.ndarray) -> None:
    """The seed's code: month timestamps in a DataFrame, a lil_matrix filled row by row from
    itertuples with each month index computed from pandas Periods."""
    import pandas as pd
    from scipy.sparse import lil_matrix

    first = pd.Timestamp("2014-01-01")
    month = np.datetime64("2014-01", "M")
    frame = pd.DataFrame(
        {
            "group_id": np.zeros(y.shape[0], dtype=np.int64),
            "PrevYearMonth": pd.to_datetime((month + prev.astype(np.int64)).astype("datetime64[ns]")),
            "RecentYearMonth": pd.to_datetime((month + recent.astype(np.int64)).astype("datetime64[ns]")),
            "LogPriceDiff": y,
        }
    )
    initial_period = first.to_period("M")
    dummy = lil_matrix((len(frame), 123))
    for i, _group, prev_ym, recent_ym, _y in frame.itertuples():
        prev_period = prev_ym.to_period("M")
        recent_period = recent_ym.to_period("M")
        prev_idx = (prev_period.year - initial_period.year) * 12 + (prev_period.month - initial_period.month)
        recent_idx = (recent_period.year - initial_period.year) * 12 + (recent_period.month - initial_period.month)
        dummy[i, prev_idx] = -1
        dummy[i, recent_idx] = 1


def dense_lstsq(prev: np.ndarray, recent: np.ndarray, y: np.ndarray) -> None:
    """Small Python HPI packages: a dense N x (T - 1) time matrix and a least-squares fit."""
    rows = np.arange(y.shape[0])
    z = np.zeros((y.shape[0], 123))
    z[rows, prev] = -1.0
    z[rows, recent] = 1.0
    np.linalg.lstsq(z[:, 1:], y, rcond=None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M,150M", help="pair counts for the engine cases (e.g. 1M,10M,150M)")
    parser.add_argument("--cases", default="normal,lsqr", help=f"comma-separated, from {','.join(CASES)}")
    parser.add_argument("--seed-size", default="200K", help="pairs for seed_loop (extrapolated to 68M and 150M)")
    parser.add_argument("--dense-size", default="1M", help="pairs for dense_lstsq")
    parser.add_argument("--backend", default="cpu", choices=["cpu", "gpu", "auto"])
    parser.add_argument("--parts", type=int, default=1, help="cli_parquet: split the parquet into this many files")
    parser.add_argument("--tol", type=float, help="lsqr / lsmr cases: solver.tol (default: the library's)")
    parser.add_argument(
        "--blas-threads", type=int, help="BLAS threads of each case's process (threadpoolctl), e.g. a many-core host's"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--fork",
        action="store_true",
        help="smoke runs: each case in a child forked from this process, its imports done once (no start-up)",
    )
    parser.add_argument("--one", nargs=4, metavar=("CASE", "N", "BACKEND", "PARTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fork and args.backend != "cpu":
        parser.error("--fork forks cases on the CPU only (--backend cpu): a process that has started CUDA cannot")
    if args.one:  # child process: one measurement, printed as JSON
        if args.blas_threads:
            import scipy.linalg  # noqa: F401  (its BLAS loaded, to be limited too)
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=args.blas_threads, user_api="blas")  # for the whole process
        print(json.dumps(run_case(args.one[0], int(args.one[1]), args.one[2], int(args.one[3]), args.tol)))
        return

    jobs: list[tuple[str, int]] = []
    for case in args.cases.split(","):
        if case == "seed_loop":
            jobs.append((case, parse_size(args.seed_size)))
        elif case == "dense_lstsq":
            jobs.append((case, parse_size(args.dense_size)))
        else:
            jobs.extend((case, parse_size(s)) for s in args.sizes.split(","))
    rows = []
    if args.fork:
        from benchmarks.forked import import_lazy_modules, run_forked

        import_lazy_modules()  # once, for every child
    for case, n in jobs:
        one = ["--one", case, str(n), args.backend, str(args.parts)]
        one += ([] if args.tol is None else ["--tol", str(args.tol)]) + (
            [] if args.blas_threads is None else ["--blas-threads", str(args.blas_threads)]
        )
        env = {"NUMPY_MADVISE_HUGEPAGE": "0", **os.environ}  # as `python -m gpu_hpi` runs
        if args.fork:
            out = run_forked(["benchmarks", *one], main, env)
        else:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks", *one], env=env, capture_output=True, text=True, check=False
            )
        if out.returncode != 0:
            print(f"{case} at {n:,} pairs failed:\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        if case == "seed_loop":
            for target in (68_000_000, 150_000_000):
                rows.append(
                    {
                        **row,
                        "n": target,
                        "seconds": row["seconds"] * target / n,
                        "extra_rss": None,
                        "inputs": None,
                        "case": "seed_loop (extrapolated)",
                    }
                )
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "forked": args.fork, "rows": rows}, f, indent=2)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_table(rows: list[dict[str, Any]]) -> None:
    def mb(v: int | None) -> str:
        return "-" if v is None else f"{v / 1e6:,.0f} MB"

    print(f"machine: {machine()}; device: {rows[0]['device'] if rows else '-'}")
    print(f"| {'case':<26} | {'pairs':>13} | {'time':>10} | {'peak memory *':>15} | {'input **':>13} |")
    print(f"|{'-' * 28}|{'-' * 15}:|{'-' * 12}:|{'-' * 17}:|{'-' * 15}:|")
    for r in rows:
        print(
            f"| {r['case']:<26} | {r['n']:>13,} | {r['seconds']:>8.2f} s | {mb(r['extra_rss']):>15} | "
            f"{mb(r['inputs']):>13} |"
        )
    print("*  in-memory cases: peak RSS added over the inputs; cli_parquet: peak RSS of the whole process")
    print(
        "** in-memory cases: the pair arrays; cli_parquet, transactions: the parquet file(s); cells: the table's file"
    )


if __name__ == "__main__":
    main()
