"""The DuckDB reader of pair files (io/sql_pairs.py, its period columns from io/sql.py) against the
streaming pyarrow reader on the same files: the same cell table, window and drop counts for every
period type (ISO weeks too), group type, format and rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import MONDAY_0, weekly_pairs

import gpu_hpi
from gpu_hpi.data.calendar import parse_period
from gpu_hpi.data.cells import TableAccumulator
from gpu_hpi.errors import ConfigError, DataError
from gpu_hpi.io.pairs import PairSource
from gpu_hpi.io.sql import Unsupported
from gpu_hpi.io.sql_pairs import sql_cell_table

CPU = gpu_hpi.resolve_backend("cpu")
COLUMNS = {"group": "region", "prev": "d0", "recent": "d1", "y": "y"}
N = 6000


def stream_table(source: PairSource, start: int | None, end: int | None) -> tuple[int, gpu_hpi.CellTable, int]:
    """(first period, table, missing_period) as the streaming reader builds them (app.load_pairs.load_pairs)."""
    acc = TableAccumulator()
    for batch in source.batches():
        acc.missing_period += batch.missing_period
        if batch.n_rows:
            acc.add(*batch.cell_table(start, end, CPU))
    first, table = acc.total(start, end)
    return first, table, acc.missing_period


def assert_same(source: PairSource, start: int | None = None, end: int | None = None) -> gpu_hpi.CellTable:
    got = sql_cell_table(source, start, end)
    assert got is not None
    first, want, missing = stream_table(source, start, end)
    assert (got.first, got.table.n_periods, got.missing_period) == (first, want.n_periods, missing)
    assert got.table.dropped == want.dropped
    assert [str(g) for g in got.table.group_labels] == [str(g) for g in want.group_labels]
    for name in ("group", "prev", "recent", "count"):
        np.testing.assert_array_equal(getattr(got.table, name), getattr(want, name), err_msg=name)
    assert set(got.table.sums) == set(want.sums)
    for name, values in want.sums.items():
        np.testing.assert_allclose(got.table.sums[name], values, rtol=1e-12, atol=1e-9, err_msg=name)
    return got.table


def frame(seed: int = 0, invalid: bool = True) -> pd.DataFrame:
    """Pairs over 2014-01..2023-12 with days inside the month, three regions; with invalid rows of
    every reason: null dates, null regions, prev == recent, prev > recent, null, NaN and infinite y."""
    rng = np.random.default_rng(seed)
    m0 = rng.integers(0, 110, N)
    m1 = m0 + rng.integers(1, 10, N)
    month = np.datetime64("2014-01", "M")
    d0 = (month + m0).astype("datetime64[D]") + rng.integers(0, 28, N)
    d1 = (month + m1).astype("datetime64[D]") + rng.integers(0, 28, N)
    out = pd.DataFrame(
        {
            "region": rng.choice(np.array([11, 26, 41]), N),
            "d0": d0.astype("datetime64[ns]"),
            "d1": d1.astype("datetime64[ns]"),
            "y": rng.normal(0.01, 0.1, N),
            "p0": np.exp(rng.normal(12, 0.3, N)),
        }
    )
    out["p1"] = out["p0"] * np.exp(out["y"])
    if invalid:
        out.loc[::101, "d0"] = pd.NaT
        out.loc[5::211, "region"] = np.nan
        out.loc[7::307, "d1"] = out.loc[7::307, "d0"]
        out.loc[9::347, "d0"] = out.loc[9::347, "d1"] + pd.Timedelta(days=40)
        out.loc[11::401, "y"] = np.nan
        out.loc[13::503, "y"] = np.inf
        out.loc[17::601, "p0"] = 0.0
    return out


def write(tmp_path: Path, data: pd.DataFrame, name: str = "pairs.parquet", **arrow_types: pa.DataType) -> str:
    table = pa.Table.from_pandas(data, preserve_index=False)
    for col, kind in arrow_types.items():
        table = table.set_column(table.schema.get_field_index(col), col, table.column(col).cast(kind))
    path = tmp_path / name
    if name.endswith(".csv"):
        data.to_csv(path, index=False)
    else:
        pq.write_table(table, path, row_group_size=1000)
    return str(path)


@pytest.mark.parametrize("unit", ["ns", "us", "ms", "s"])
def test_timestamps_every_unit(tmp_path: Path, unit: str) -> None:
    path = write(tmp_path, frame(), d0=pa.timestamp(unit), d1=pa.timestamp(unit))
    table = assert_same(PairSource(path, "auto", COLUMNS))
    assert set(table.dropped) == {"missing_group", "same_period", "prev_not_before_recent", "nonfinite_y"}


@pytest.mark.parametrize("periodicity", ["month", "quarter", "year"])
def test_dates_by_periodicity(tmp_path: Path, periodicity: str) -> None:
    path = write(tmp_path, frame(1), d0=pa.date32(), d1=pa.date32())
    assert_same(PairSource(path, "auto", COLUMNS, periodicity=periodicity))


def test_windows(tmp_path: Path) -> None:
    path = write(tmp_path, frame(2))
    source = PairSource(path, "auto", COLUMNS)
    month = parse_period("2016-05", "month")
    for start, end in ((month, None), (None, month + 40), (month, month + 40)):
        table = assert_same(source, start, end)
        assert table.dropped["period_out_of_range"] > 0


def test_strings_and_dictionary_strings(tmp_path: Path) -> None:
    data = frame(3)
    data["d0"] = data["d0"].dt.strftime("%Y-%m").where(data["d0"].notna(), None)
    data["d1"] = data["d1"].dt.strftime("%Y-%m-%d")
    assert_same(PairSource(write(tmp_path, data), "auto", COLUMNS))
    dictionary = write(tmp_path, data, "dict.parquet", d0=pa.dictionary(pa.int32(), pa.string()))
    assert_same(PairSource(dictionary, "auto", COLUMNS, periodicity="quarter"))


def test_integer_periods(tmp_path: Path) -> None:
    data = frame(4)
    positions = data.assign(
        d0=((data["d0"].dt.year - 2014) * 12 + data["d0"].dt.month - 1).astype("Int64"),
        d1=(data["d1"].dt.year - 2014) * 12 + data["d1"].dt.month - 1,
    )
    assert_same(PairSource(write(tmp_path, positions), "auto", COLUMNS, start="2014-01"))
    yyyymm = data.assign(
        d0=(data["d0"].dt.year * 100 + data["d0"].dt.month).astype("Int64"),
        d1=data["d1"].dt.year * 100 + data["d1"].dt.month,
    )
    assert_same(PairSource(write(tmp_path, yyyymm, "ym.parquet"), "auto", COLUMNS, integer_periods="yyyymm"))
    with pytest.raises(DataError, match="YYYYMM"):
        sql_cell_table(
            PairSource(write(tmp_path, positions, "pos.parquet"), "auto", COLUMNS, integer_periods="yyyymm"), None, None
        )
    with pytest.raises(ConfigError, match=r"data\.start"):
        sql_cell_table(PairSource(write(tmp_path, positions, "nostart.parquet"), "auto", COLUMNS), None, None)


@pytest.mark.parametrize("group", ["int", "string", "none"])
def test_group_types(tmp_path: Path, group: str) -> None:
    data = frame(5)
    columns = dict(COLUMNS)
    if group == "string":
        data["region"] = data["region"].map({11.0: "Seoul", 26.0: "Busan", 41.0: "Gyeonggi"})
    elif group == "none":
        del columns["group"]
    assert_same(PairSource(write(tmp_path, data), "auto", columns))


def test_prices_and_y_from_prices(tmp_path: Path) -> None:
    path = write(tmp_path, frame(6))
    priced = {**COLUMNS, "price_prev": "p0", "price_recent": "p1"}
    table = assert_same(PairSource(path, "auto", priced))
    assert table.has_prices and table.dropped["invalid_price"] > 0
    assert_same(PairSource(path, "auto", {**priced, "y": None}))


def test_several_parquet_files_by_column_name_not_folder_name(tmp_path: Path) -> None:
    """Parts whose columns come in another order are matched by name; a folder named like a Hive
    partition (region=7) does not replace the file's own region column."""
    data = frame(7)
    parts = tmp_path / "region=7"
    parts.mkdir()
    for k in range(3):
        chunk = data.iloc[k * N // 3 : (k + 1) * N // 3]
        write(parts, chunk[list(reversed(chunk.columns))] if k == 1 else chunk, f"part-{k}.parquet")
    table = assert_same(PairSource(str(parts), "auto", COLUMNS))
    assert table.group_labels.tolist() == [11.0, 26.0, 41.0]


def test_csv_is_left_to_the_pyarrow_reader(tmp_path: Path) -> None:
    """CSV null tokens ('NA', 'null') and type inference stay pyarrow's: the SQL reader declines."""
    with pytest.raises(Unsupported, match="not parquet"):
        sql_cell_table(PairSource(write(tmp_path, frame(7), "pairs.csv"), "auto", COLUMNS), None, None)


def test_group_rules_as_the_streaming_reader(tmp_path: Path) -> None:
    """A NaN group id (not null) is a missing group; a group whose pairs are all dropped keeps its
    label (and is skipped by the fit), as the streaming reader encodes groups before the rules."""
    data = frame(10, invalid=False)
    data.loc[::50, "region"] = np.nan  # float NaN, no nulls: polars or Spark write such columns
    doomed = data["region"] == 41
    data.loc[doomed, "d1"] = data.loc[doomed, "d0"]  # every pair of region 41: prev == recent
    path = write(tmp_path, data, "nan.parquet")
    arrow = pq.read_table(path)
    nan_ids = pa.array(data["region"].to_numpy(float))  # from numpy: NaN stays NaN (pandas would make it null)
    assert nan_ids.null_count == 0
    pq.write_table(arrow.set_column(arrow.schema.get_field_index("region"), "region", nan_ids), path)
    table = assert_same(PairSource(path, "auto", COLUMNS))
    assert table.group_labels.tolist() == [11.0, 26.0, 41.0] and table.dropped["missing_group"] > 0
    assert not (table.group == 2).any()


def test_period_checks_skip_rows_without_both_dates(tmp_path: Path) -> None:
    """A bad period whose partner period is missing is dropped as missing_period, not refused."""
    data = frame(11, invalid=False)
    months = data.assign(
        d0=data["d0"].dt.year * 100 + data["d0"].dt.month, d1=data["d1"].dt.year * 100 + data["d1"].dt.month
    )
    months = months.astype({"d1": "Int64"})
    months.loc[3, ["d0", "d1"]] = [201499, pd.NA]
    assert_same(PairSource(write(tmp_path, months, "ym.parquet"), "auto", COLUMNS, integer_periods="yyyymm"))
    labels = data.assign(d0=data["d0"].dt.strftime("%Y-%m"), d1=data["d1"].dt.strftime("%Y-%m"))
    labels.loc[5, ["d0", "d1"]] = ["garbage", None]
    assert_same(PairSource(write(tmp_path, labels, "labels.parquet"), "auto", COLUMNS))


def test_clean_data_takes_one_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NaN or infinite y the careful query (per-pair tests) never runs."""
    from gpu_hpi.io import sql_pairs

    calls: list[bool] = []
    real = sql_pairs._cells

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("careful", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(sql_pairs, "_cells", spy)
    assert_same(PairSource(write(tmp_path, frame(8, invalid=False)), "auto", COLUMNS))
    assert calls == [False]
    calls.clear()
    assert_same(PairSource(write(tmp_path, frame(8), "dirty.parquet"), "auto", COLUMNS))
    assert calls == [False, True]


def test_refusals(tmp_path: Path) -> None:
    data = frame(9)
    with pytest.raises(DataError, match=r"'y' of .*pairs\.parquet must be numeric"):
        sql_cell_table(PairSource(write(tmp_path, data.assign(y="x")), "auto", COLUMNS), None, None)
    with pytest.raises(DataError, match="not found"):
        sql_cell_table(PairSource(write(tmp_path, data, "p.parquet"), "auto", {**COLUMNS, "y": "nope"}), None, None)
    with pytest.raises(DataError, match="no pairs"):
        sql_cell_table(PairSource(write(tmp_path, data.iloc[:0], "empty.parquet"), "auto", COLUMNS), None, None)
    with pytest.raises(DataError, match="strict"):
        sql_cell_table(PairSource(write(tmp_path, data, "s.parquet"), "auto", COLUMNS), None, None, strict=True)
    zoned = write(tmp_path, data, "tz.parquet", d0=pa.timestamp("ns", tz="Asia/Seoul"))
    with pytest.raises(Unsupported, match="time zone"):  # the pyarrow reader's
        sql_cell_table(PairSource(zoned, "auto", COLUMNS), None, None)


def assert_same_batch(source: PairSource) -> None:
    """sql_batch gives the streaming reader's pairs in file order (accuracy's folds hash positions),
    with the same missing_period count, and so the same cell table."""
    from gpu_hpi.data.pairs import encode_groups
    from gpu_hpi.io.sql_pairs import sql_batch

    batch = sql_batch(source)
    assert batch is not None
    streamed = list(source.batches())
    assert batch.missing_period == sum(b.missing_period for b in streamed) > 0
    for name in ("prev", "recent", "y", "price_prev", "price_recent"):
        parts = [getattr(b, name) for b in streamed]
        want = None if parts[0] is None else np.concatenate(parts)
        got = getattr(batch, name)
        assert (got is None) == (want is None), name
        if want is not None:  # y from prices: DuckDB's ln and numpy's log may differ in the last bit
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=0, err_msg=name)
    if batch.group is not None:
        got_codes, got_labels = encode_groups(CPU, batch.group)
        want_codes, want_labels = encode_groups(
            CPU, pd.concat([pd.Series(b.group) for b in streamed], ignore_index=True)
        )
        assert [str(v) for v in got_labels] == [str(v) for v in want_labels]
        np.testing.assert_array_equal(got_codes, want_codes)
    first, table = batch.cell_table(None, None, CPU)
    want_first, want_table, _ = stream_table(source, None, None)
    assert (first, table.n_periods, table.dropped) == (want_first, want_table.n_periods, want_table.dropped)
    np.testing.assert_array_equal(table.count, want_table.count)


@pytest.mark.parametrize("kind", ["timestamps", "strings", "yyyymm", "prices", "no_group", "nan_group"])
def test_kept_pairs_equal_the_streaming_reader(tmp_path: Path, kind: str) -> None:
    data = frame(12)
    columns: dict[str, str | None] = dict(COLUMNS)
    extra: dict[str, Any] = {}
    if kind == "strings":
        data["d0"] = data["d0"].dt.strftime("%Y-%m").where(data["d0"].notna(), None)
        data["region"] = data["region"].map({11.0: "Seoul", 26.0: "Busan", 41.0: "Gyeonggi"})
    elif kind == "yyyymm":
        data["d0"] = (data["d0"].dt.year * 100 + data["d0"].dt.month).astype("Int64")
        data["d1"] = data["d1"].dt.year * 100 + data["d1"].dt.month
        extra["integer_periods"] = "yyyymm"
    elif kind == "prices":
        columns.update(price_prev="p0", price_recent="p1", y=None)
    elif kind == "no_group":
        del columns["group"]
    path = write(tmp_path, data)
    if kind == "nan_group":
        arrow = pq.read_table(path)
        ids = pa.array(data["region"].to_numpy(float))  # NaN, not null
        pq.write_table(arrow.set_column(arrow.schema.get_field_index("region"), "region", ids), path)
    assert_same_batch(PairSource(path, "auto", columns, **extra))


def test_both_pair_readers_read_weeks_alike(tmp_path: Path) -> None:
    frame = weekly_pairs()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "pairs.parquet")
    table = assert_same(PairSource(str(tmp_path / "pairs.parquet"), "auto", COLUMNS, periodicity="week"))
    assert table.dropped["same_period"] > 0
    # the cells against weeks computed here
    weeks = {c: ((frame[c].dt.date - MONDAY_0).map(lambda d: d.days) // 7).to_numpy() for c in ("d0", "d1")}
    first = int(min(weeks["d0"].min(), weeks["d1"].min()))
    ok = weeks["d0"] < weeks["d1"]
    want = (
        pd.Series(
            1, index=pd.MultiIndex.from_arrays([frame["region"][ok], weeks["d0"][ok] - first, weeks["d1"][ok] - first])
        )
        .groupby(level=[0, 1, 2])
        .sum()
    )
    got = pd.Series(
        table.count, index=pd.MultiIndex.from_arrays([table.group_labels[table.group], table.prev, table.recent])
    )
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False, check_dtype=False)
    # date strings, as labels parsed once per distinct value
    text = frame.assign(d0=frame["d0"].dt.strftime("%Y-%m-%d"), d1=frame["d1"].dt.strftime("%Y-%m-%d"))
    pq.write_table(pa.Table.from_pandas(text, preserve_index=False), tmp_path / "strings.parquet")
    assert_same(PairSource(str(tmp_path / "strings.parquet"), "auto", COLUMNS, periodicity="week"))
