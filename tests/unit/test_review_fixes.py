"""Regression tests for problems found in review: group order of categorical ids, windows that a
batch starts after, reversed windows, misread integer periods, dictionary dates, empty sales,
option values that cannot work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_app

import gpu_hpi
from gpu_hpi.data.pairs import align_groups
from gpu_hpi.synthetic import SyntheticMarket

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def seed_pairs(n: int = 20_000, periods: int = 36, seed: int = 2) -> pd.DataFrame:
    group, prev, recent, y = SyntheticMarket.create(n, periods, 3, seed=seed).arrays()
    month = np.datetime64("2014-01", "M")
    return pd.DataFrame(
        {
            "group_id": np.asarray(["zeta", "mid", "alpha"], dtype=object)[group],
            "PrevYearMonth": (month + prev.astype(np.int64)).astype("datetime64[ns]"),
            "RecentYearMonth": (month + recent.astype(np.int64)).astype("datetime64[ns]"),
            "LogPriceDiff": y,
        }
    )


@pytest.mark.parametrize("overrides", [["solver=lsqr"], ["method=robust"], ["diagnostics.accuracy_folds=3"]])
def test_categorical_group_ids_out_of_alphabetical_order(tmp_path: Path, overrides: list[str]) -> None:
    frame = seed_pairs()
    plain = tmp_path / "plain.parquet"
    frame.to_parquet(plain, index=False)
    categorical = tmp_path / "categorical.parquet"
    frame.assign(group_id=pd.Categorical(frame["group_id"], categories=["zeta", "mid", "alpha"])).to_parquet(
        categorical, index=False
    )
    common = ["data=pairs", "data.batch_rows=5000", "diagnostics.revision=false", *overrides]
    a = run_app(tmp_path, *common, f"data.path={plain}", name="plain").ok()
    b = run_app(tmp_path, *common, f"data.path={categorical}", name="categorical").ok()
    pd.testing.assert_frame_equal(a.frame, b.frame, check_exact=False, rtol=1e-10, atol=1e-12)
    assert list(a.frame["group"].unique()) == ["alpha", "mid", "zeta", "ALL"]


def test_align_groups_remaps_codes_and_keeps_missing() -> None:
    pairs = gpu_hpi.prepare_pairs(
        np.array([0, 0, 1]), np.array([1, 2, 2]), np.zeros(3), pd.Series(["b", None, "a"]), n_periods=3, backend="cpu"
    )
    table_labels = np.asarray(["a", "b", "c"], dtype=object)
    aligned = align_groups(pairs, table_labels)
    assert aligned.group.tolist() == [1, -1, 0]
    with pytest.raises(gpu_hpi.DataError):
        align_groups(pairs, np.asarray(["a", "c"], dtype=object))


def test_data_end_before_a_later_part(tmp_path: Path) -> None:
    frame = seed_pairs(periods=36)
    early = frame[frame["RecentYearMonth"] < np.datetime64("2015-06")]
    late = frame[frame["PrevYearMonth"] >= np.datetime64("2016-03")]
    (tmp_path / "ds").mkdir()
    early.to_parquet(tmp_path / "ds" / "a.parquet", index=False)
    late.to_parquet(tmp_path / "ds" / "b.parquet", index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={tmp_path / 'ds'}", "data.end=2015-12").ok()
    assert run.summary["last_period"] == "2015-12"
    assert run.summary["dropped"]["period_out_of_range"] == len(late)
    assert run.summary["n_pairs_read"] == len(early) + len(late)


def test_reversed_window_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    seed_pairs(n=2_000).to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={path}", "data.start=2016-01", "data.end=2015-01").assert_failed(
        "before"
    )


def test_yyyymm_numbers_read_as_positions_are_refused(tmp_path: Path) -> None:
    frame = seed_pairs(n=2_000)
    months = frame["PrevYearMonth"].dt.year * 100 + frame["PrevYearMonth"].dt.month
    recent = frame["RecentYearMonth"].dt.year * 100 + frame["RecentYearMonth"].dt.month
    path = tmp_path / "yyyymm.parquet"
    frame.assign(PrevYearMonth=months, RecentYearMonth=recent).to_parquet(path, index=False)
    run = run_app(tmp_path, "data=pairs", f"data.path={path}", "data.start=2014-01")
    run.assert_failed("yyyymm")


def test_dictionary_dates_keep_the_latest_sale_of_a_period(tmp_path: Path) -> None:
    sales = pd.DataFrame(
        {
            "property_id": [1, 1, 1],
            "date": ["2014-01-20", "2014-01-05", "2014-03-01"],
            "price": [200.0, 150.0, 400.0],
        }
    )
    plain, categorical = tmp_path / "plain.parquet", tmp_path / "categorical.parquet"
    sales.to_parquet(plain, index=False)
    table = pa.table(
        {
            "property_id": pa.array([1, 1, 1]),
            "date": pa.array(sales["date"]).dictionary_encode(),
            "price": pa.array(sales["price"]),
        }
    )
    pq.write_table(table, categorical)
    common = ["data=transactions", "data.columns.group=null", "index.min_pairs=1", "diagnostics.revision=false"]
    for path, name in ((plain, "plain"), (categorical, "categorical")):
        run = run_app(tmp_path, *common, f"data.path={path}", f"data.save_pairs={tmp_path / name}.pairs", name=name)
        run.ok()
        saved = pd.read_parquet(tmp_path / f"{name}.pairs")
        assert saved[["PrevPrice", "RecentPrice"]].values.tolist() == [[200.0, 400.0]], name


def test_transactions_without_any_dated_sale(tmp_path: Path) -> None:
    path = tmp_path / "sales.parquet"
    pq.write_table(
        pa.table(
            {
                "property_id": pa.array([1, 2]),
                "date": pa.array([None, None], type=pa.timestamp("ns")),
                "price": pa.array([1.0, 2.0]),
            }
        ),
        path,
    )
    run = run_app(tmp_path, "data=transactions", f"data.path={path}", "data.columns.group=null")
    run.assert_failed("sales")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("data.n_pairs=-5", "synthetic"),
        ("data.n_periods=1", "synthetic"),
        ("output.ci_level=1.0", "ci_level"),
        ("method.huber_c=0", "huber_c"),
        ("index.base_period=2017-13", "2017-13"),
    ],
)
def test_option_values_that_cannot_work(tmp_path: Path, override: str, fragment: str) -> None:
    run_app(tmp_path, "data.n_pairs=2000", override).assert_failed(fragment)


def test_batch_rows_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    seed_pairs(n=1_000).to_parquet(path, index=False)
    run_app(tmp_path, "data=pairs", f"data.path={path}", "data.batch_rows=0").assert_failed("batch_rows")
