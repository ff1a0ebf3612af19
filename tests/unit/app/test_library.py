"""app/library.py: the command line's job from Python. A frame of pairs (pyarrow, pandas, polars, a
DuckDB relation) gives the index, standard errors and drop counts the command line gives for the
same pairs in a file; options are the command line's, by name; run(overrides) is the command line
in-process."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import seed_pairs
from sales_reference import random_sales, write_sales

import gpu_hpi
from gpu_hpi.app.library import option_paths

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


@pytest.fixture(scope="module")
def pairs() -> pa.Table:
    return seed_pairs(20_000, seed=5)


@pytest.fixture(scope="module")
def cli(pairs: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> gpu_hpi.RunResult:
    path = tmp_path_factory.mktemp("cli") / "pairs.parquet"
    pq.write_table(pairs, path)
    return gpu_hpi.run(
        ["data=pairs", f"data.path={path}", "backend=cpu", "output.plot=false"], tmp_path_factory.mktemp("run")
    )


@pytest.mark.parametrize("kind", ["pyarrow", "pandas", "polars", "duckdb", "record_batch"], ids=lambda k: str(k))
def test_a_frame_gives_the_command_lines_index(pairs: pa.Table, cli: gpu_hpi.RunResult, kind: str) -> None:
    frame = {
        "pyarrow": lambda: pairs,
        "pandas": pairs.to_pandas,
        "polars": lambda: pl.from_arrow(pairs),
        "duckdb": lambda: duckdb.from_arrow(pairs),
        "record_batch": lambda: pairs.combine_chunks().to_batches()[0],
    }[kind]()
    result = gpu_hpi.index_from_pairs(frame, backend="cpu")
    want = cli.index
    assert list(result.groups) == list(want.groups) and list(result.periods) == list(want.periods)
    np.testing.assert_allclose(result.log_index, want.log_index, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.se, want.se, rtol=1e-9, atol=0)
    assert result.dropped == cli.summary["dropped"] and result.dropped  # null periods and a null y
    for key in ("n_pairs_read", "n_pairs_used", "skipped_groups", "n_unidentified"):
        assert result.summary[key] == cli.summary[key], key
    assert result.summary["reader"] == "frame_batches"  # in memory already: its batches, as a file's
    (read,) = result.summary["run"]["inputs"]
    assert read["frame"] is True and read["rows"] == pairs.num_rows and read["path"] is None


def test_a_frame_of_string_periods_gives_the_command_lines_index(tmp_path: Path) -> None:
    """Periods as strings (DuckDB joins them to a lookup table for the file): the frame's batches
    are converted as files' are, and give the command line's index."""
    table = seed_pairs(8_000, seed=9)
    as_text = table.set_column(1, "PrevYearMonth", pa.array(table.column(1).to_pandas().dt.strftime("%Y-%m")))
    as_text = as_text.set_column(2, "RecentYearMonth", pa.array(table.column(2).to_pandas().dt.strftime("%Y-%m")))
    path = tmp_path / "text.parquet"
    pq.write_table(as_text, path)
    cli = gpu_hpi.run(["data=pairs", f"data.path={path}", "backend=cpu", "output.plot=false"], tmp_path / "run")
    got = gpu_hpi.index_from_pairs(as_text, backend="cpu")
    assert got.summary["reader"] == "frame_batches" and got.dropped == cli.summary["dropped"]
    np.testing.assert_allclose(got.log_index, cli.index.log_index, rtol=0, atol=1e-12)


def test_run_is_the_command_line_in_process(cli: gpu_hpi.RunResult) -> None:
    assert (cli.run_dir / "summary.json").is_file() and (cli.run_dir / "index.parquet").is_file()
    assert cli.summary["reader"] == "duckdb_table" and cli.index.summary is cli.summary
    written = pd.read_parquet(cli.run_dir / "index.parquet")
    np.testing.assert_allclose(written["log_index"], cli.index.log_index.ravel(), rtol=0, atol=0, equal_nan=True)


def test_run_writes_into_the_overrides_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hydra.run.dir= as on the command line (it went to a temporary directory); run_dir= beside a
    different one is refused."""
    lean = ["data.n_pairs=2000", "backend=cpu", "output.plot=false", "diagnostics.revision=false"]
    ran = gpu_hpi.run([*lean, f"hydra.run.dir={tmp_path / 'named'}"])
    assert ran.run_dir == tmp_path / "named" and (ran.run_dir / "summary.json").is_file()
    with pytest.raises(gpu_hpi.ConfigError, match="two run directories"):
        gpu_hpi.run([*lean, f"hydra.run.dir={tmp_path / 'named'}"], tmp_path / "other")
    assert not (tmp_path / "other").exists()
    monkeypatch.chdir(tmp_path)  # the same directory named two ways is one
    assert gpu_hpi.run([*lean, "hydra.run.dir=named"], tmp_path / "named").run_dir == tmp_path / "named"
    for overrides in ("data.n_pairs=2000", ["data.n_pairs=2000", 5]):  # a string was read as its characters
        with pytest.raises(gpu_hpi.ConfigError, match="overrides are a list of strings"):
            gpu_hpi.run(overrides)  # type: ignore[arg-type]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(gpu_hpi.DataError, match="is a file"):
        gpu_hpi.run(lean, tmp_path / "a_file")


def test_options_by_their_command_line_names(pairs: pa.Table) -> None:
    result = gpu_hpi.index_from_pairs(
        pairs, method="case_shiller", base_period="2015-06", min_pairs=50, pooled=False, backend="cpu"
    )
    assert result.summary["method"] == "case_shiller" and result.periods[result.base_period] == "2015-06"
    assert "ALL" not in set(result.groups)
    for day in (pd.Timestamp("2015-06-12"), datetime.date(2015, 6, 1), np.datetime64("2015-06-30T12:00")):
        dated = gpu_hpi.index_from_pairs(pairs, base_period=day, backend="cpu")  # a Timestamp was refused
        assert dated.periods[dated.base_period] == "2015-06", day
    renamed = pairs.rename_columns(["region", "sold_before", "sold_after", "dy"])
    same = gpu_hpi.index_from_pairs(
        renamed, group="region", prev="sold_before", recent="sold_after", y="dy", backend="cpu", **{"solver.tol": 1e-9}
    )
    np.testing.assert_allclose(same.log_index, gpu_hpi.index_from_pairs(pairs, backend="cpu").log_index, atol=1e-12)


def test_every_keyword_is_an_option_of_the_configuration() -> None:
    paths = option_paths()
    assert paths["base_period"] == ["index.base_period"] and paths["min_pairs"] == ["index.min_pairs"]
    assert paths["method"] == ["method"] and paths["accuracy_folds"] == ["diagnostics.accuracy_folds"]
    assert sorted(paths["tol"]) == ["method.tol", "solver.tol"]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tol": 1e-9}, gpu_hpi.ConfigError, "'tol' is an option of"),
        ({"nope": 1}, gpu_hpi.ConfigError, "unknown option 'nope'"),
        ({"min_pairs": "many"}, gpu_hpi.ConfigError, "index.min_pairs='many'"),
        ({"method": "nope"}, gpu_hpi.ConfigError, "nope"),
        ({"y": "zz"}, gpu_hpi.DataError, "column(s) 'zz' not found in the frame"),
        ({"base_period": "2015-13"}, gpu_hpi.ConfigError, "month"),
    ],
)
def test_bad_options_are_the_command_lines_refusals(
    pairs: pa.Table, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        gpu_hpi.index_from_pairs(pairs, backend="cpu", **options)


def test_a_column_the_frame_holds_twice_is_refused(pairs: pa.Table) -> None:
    twice = pa.Table.from_arrays([*pairs.columns, pairs.column(3)], names=[*pairs.column_names, "LogPriceDiff"])
    with pytest.raises(gpu_hpi.DataError, match="column 'LogPriceDiff' appears 2 times in the frame"):
        gpu_hpi.index_from_pairs(twice, backend="cpu")


def test_frames_that_arrow_cannot_read_or_that_hold_no_sale_are_one_line(pairs: pa.Table) -> None:
    """pyarrow's and pandas' own errors before (ArrowTypeError, ValueError, TypeError)."""
    frame = pairs.slice(0, 500).to_pandas()
    mixed = frame.astype({"group_id": object})
    mixed.loc[:5, "group_id"] = "B"
    twice = frame.set_axis(["group_id", "PrevYearMonth", "PrevYearMonth", "LogPriceDiff"], axis=1)
    listed = frame.assign(group_id=[[g] for g in frame["group_id"]])
    refusals = {
        "cannot read the frame as Arrow columns: (\"Expected bytes, got a 'int' object\"": mixed,
        "cannot read the frame as Arrow columns: Duplicate column names": twice,
        "the region column (data.columns.group) holds list<item: int64> values": listed,
    }
    for message, bad in refusals.items():
        with pytest.raises(gpu_hpi.DataError, match=re.escape(message)):
            gpu_hpi.index_from_pairs(bad, backend="cpu")
    sales = random_sales(7, n_props=50).iloc[:0]
    with pytest.raises(gpu_hpi.DataError, match="the input holds no sales"):
        gpu_hpi.index_from_sales(sales, property=["a", "b", "c"], group="group", backend="cpu")


def test_what_is_no_frame_is_refused() -> None:
    with pytest.raises(gpu_hpi.ConfigError, match="cannot read a list as a frame"):
        gpu_hpi.index_from_pairs([1, 2, 3])


@pytest.mark.parametrize("kind", ["pyarrow", "pandas", "polars"])
def test_sale_records_in_a_frame_give_the_command_lines_index(tmp_path: Path, kind: str) -> None:
    """Sale records with null keys, dates and bad prices: the frame's pairs, index and drop counts
    are the command line's on the same records in a file (which DuckDB pairs)."""
    sales = random_sales(7, n_props=800)
    path = write_sales(tmp_path, sales, ["a", "b", "c"])
    options = ["backend=cpu", "output.plot=false", "data.pairing=all", "data.max_holding=40", "index.min_pairs=5"]
    columns = ["data.columns.property=[a,b,c]", "data.columns.date=date", "data.columns.price=price"]
    cli = gpu_hpi.run(["data=transactions", f"data.path={path}", *columns, "data.columns.group=group", *options])
    table = pq.read_table(path)
    frame = {"pyarrow": lambda: table, "pandas": table.to_pandas, "polars": lambda: pl.from_arrow(table)}[kind]()
    got = gpu_hpi.index_from_sales(
        frame,
        property=["a", "b", "c"],
        date="date",
        price="price",
        group="group",
        pairing="all",
        max_holding=40,
        min_pairs=5,
        backend="cpu",
    )
    assert cli.summary["reader"] == "duckdb_sales" and got.summary["reader"] == "array_sales"
    assert list(got.groups) == list(cli.index.groups)
    np.testing.assert_allclose(got.log_index, cli.index.log_index, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.se, cli.index.se, rtol=1e-9)
    assert got.dropped == cli.summary["dropped"] and got.dropped
    for key in ("n_sales_read", "n_pairs_made", "n_pairs_used"):
        assert got.summary[key] == cli.summary[key], key


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["data=pairs", "data.path=x.parquet", "method=case_shiller", "method.stage2=absolute"],
        ["data=transactions", "data.path=s.csv", "data.columns.property=[a,b]", "index.base_period=2017-11"],
        ["backend=cpu", "solver=lsqr", "solver.tol=1e-9", "index.min_pairs=null", "+hydra.job.chdir=false"],
        ["data=cells", "data.path=[a.parquet,b.parquet]", "output.plot=false", "diagnostics.accuracy_folds=0"],
    ],
    ids=lambda o: " ".join(o) or "default",
)
def test_the_library_composes_as_hydra_does(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gpu_hpi.app.library import compose as library_compose
    from gpu_hpi.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base=None, job_name="test"):
        want = compose(config_name="config", overrides=overrides)
    for _ in range(2):  # composed, then from the kept composition
        got = library_compose(overrides)
        assert OmegaConf.to_yaml(got) == OmegaConf.to_yaml(want)
        assert OmegaConf.is_struct(got) and not OmegaConf.is_readonly(got)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.nope=1"], "Could not override 'data.nope'"),
        (["index.min_pairs=many"], "index.min_pairs"),
        (["method=nope"], "nope"),
        (["data=pairs", "data.path"], "data.path"),
        # values the run would have met as a traceback, or never read
        (["index.base_period=${nope}"], "Interpolation key 'nope' not found: index.base_period"),
        (["output.ci_level=${oc.env:GPU_HPI_UNSET_VARIABLE}"], 'output.ci_level: "Environment variable'),
        (["+method.huber=2"], "no such option: method.huber"),
        (["+unknown=3", "++data.extra=1"], "no such option: data.extra, unknown"),
        (["data=pairs", "data.kind=cells"], "data.kind=cells: the kind of input is chosen as data=cells"),
        (["method=[bmn,case_shiller]"], "method=[bmn,case_shiller]: one method per run"),  # merged: the last won
    ],
)
def test_overrides_that_do_not_compose_are_one_line(overrides: list[str], message: str) -> None:
    from gpu_hpi.app.library import compose as library_compose

    with pytest.raises(gpu_hpi.ConfigError, match=re.escape(message)) as refused:
        library_compose(overrides)
    assert "\n" not in str(refused.value)
