"""What the command line checks before it imports the run's modules (app/preflight.py): dates of an
implausible year in the parquet footers, and whether a GPU run will use CuPy's arrays (the warm-up's
hint)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import compose_config

from gpu_hpi.app import pipeline
from gpu_hpi.app.preflight import uses_device_arrays
from gpu_hpi.errors import DataError


@pytest.mark.parametrize("kind", ["pairs", "transactions"])
def test_implausible_dates_are_refused_before_the_run_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The command line's job checks the parquet footers first (app/preflight.py): nanoseconds
    stored as milliseconds end the run in one line, exit 2, before pipeline.run (and its imports,
    and a GPU's warm-up) are reached."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers import in_process

    from gpu_hpi import __main__ as app

    ns = (np.datetime64("2014-01", "M") + np.arange(500) % 100).astype("datetime64[ns]").astype(np.int64)
    stamps = pa.array(ns, pa.int64()).cast(pa.timestamp("ms"))
    path = tmp_path / "bad.parquet"
    table = {"p": np.arange(500) % 40, "d": stamps, "d2": stamps, "x": np.ones(500)}
    pq.write_table(pa.table(table), path)
    columns = {
        "pairs": [
            "data=pairs",
            "data.columns.prev=d",
            "data.columns.recent=d2",
            "data.columns.y=x",
            "data.columns.group=null",
        ],
        "transactions": [
            "data=transactions",
            "data.columns.property=p",
            "data.columns.date=d",
            "data.columns.price=x",
            "data.columns.group=null",
        ],
    }[kind]
    cfg = compose_config(*columns, f"data.path={path}", "backend=cpu")

    def not_reached(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pipeline.run was reached")

    monkeypatch.setattr(pipeline, "run", not_reached)
    rc, _, err = in_process(lambda: app.run_job(cfg, tmp_path / "out", command_line=True), cwd=tmp_path)
    assert rc == 2
    assert err.count("gpu_hpi: error:") == 1 and "nanoseconds stored as milliseconds" in err
    with pytest.raises(DataError, match="finer"):  # and pipeline.run itself refuses it too
        monkeypatch.undo()
        pipeline.run(cfg, tmp_path / "out2")


@pytest.mark.parametrize(
    ("overrides", "arrays"),
    [
        (["data=pairs", "data.path=x.parquet"], False),
        (["data=pairs", "data.path=x.parquet", "method=case_shiller"], False),
        (["data=pairs", "data.path=x.parquet", "method=case_shiller", "method.stage2=absolute"], True),
        (["data=pairs", "data.path=x.parquet", "method=robust"], True),
        (["data=pairs", "data.path=x.parquet", "solver=lsqr"], True),
        (["data=pairs", "data.path=x.parquet", "diagnostics.accuracy_folds=5"], True),
        (["data=pairs", "data.path=x.parquet", "data.columns.price_prev=a", "data.columns.price_recent=b"], True),
        (["data=transactions", "data.path=x.parquet"], True),
        ([], True),  # the synthetic market: arrays made on the device
    ],
)
def test_the_warm_up_imports_cupy_only_for_runs_that_use_it(overrides: list[str], arrays: bool) -> None:
    assert uses_device_arrays(compose_config(*overrides)) == arrays


# --------------------------------------------------------------------------------------------------
# no output written over an input


def digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def sales_file(tmp_path: Path) -> Path:
    from sales_reference import random_sales, write_sales

    return write_sales(tmp_path, random_sales(21, n_props=300), ["a", "b"])


SALES = ["data=transactions", "data.columns.property=[a,b]", "data.columns.group=group"]


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_save_pairs_over_the_input_is_refused_and_the_input_kept(tmp_path: Path, link: str) -> None:
    """data.save_pairs naming the sale records themselves (or a link to them) is one line, exit 2,
    before anything is read; the file is unchanged."""
    import os

    from helpers import run_app

    sales = sales_file(tmp_path)
    before = digest(sales)
    target = {"same": sales, "symlink": tmp_path / "link.parquet", "hardlink": tmp_path / "hard.parquet"}[link]
    if link == "symlink":
        os.symlink(sales, target)
    elif link == "hardlink":
        os.link(sales, target)
    run = run_app(tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={target}")
    assert run.rc == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "data.save_pairs=" in run.stderr and "would overwrite the input" in run.stderr
    assert digest(sales) == before and not (run.dir / "summary.json").exists()


def test_run_outputs_over_inputs_are_refused(tmp_path: Path) -> None:
    """A stored cell table read from the run directory that the run would write again, and pair
    files named as one of the run's outputs (one it writes only where some index values are left
    empty among them): refused in one line, the inputs unchanged."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from helpers import run_app, seed_pairs

    first = run_app(tmp_path, "data.n_pairs=20000", "output.cells=true", name="history").ok()
    cells = first.dir / "cells.parquet"
    before = digest(cells)
    again = run_app(tmp_path, "data=cells", f"data.path={cells}", "output.cells=true", name="history")
    assert again.rc == 2 and "the output cells.parquet" in again.stderr and "would overwrite the input" in again.stderr
    assert digest(cells) == before
    # without output.cells the stored table is only read: the run goes ahead
    run_app(tmp_path, "data=cells", f"data.path={cells}", name="history").ok()
    assert digest(cells) == before

    inside = tmp_path / "inside"
    inside.mkdir()
    pq.write_table(seed_pairs(3000, 4), inside / "index.parquet")
    pairs_before = digest(inside / "index.parquet")
    run = run_app(tmp_path, "data=pairs", f"data.path={inside / 'index.parquet'}", name="inside")
    assert run.rc == 2 and "the output index.parquet" in run.stderr
    assert digest(inside / "index.parquet") == pairs_before
    # unidentified.csv, written only where index values are left empty (known once fitted): refused
    # before the read, as the pairs of this file leave some
    pacsv.write_csv(seed_pairs(3000, 4), inside / "unidentified.csv")
    listed_before = digest(inside / "unidentified.csv")
    thin = ("data.format=csv", "index.min_pairs=1")
    run = run_app(tmp_path, "data=pairs", f"data.path={inside / 'unidentified.csv'}", *thin, name="inside")
    assert run.rc == 2 and "the output unidentified.csv" in run.stderr
    assert digest(inside / "unidentified.csv") == listed_before


@pytest.mark.parametrize("name", ["gpu_hpi.log", ".gpu_hpi.lock", ".hydra/pairs.parquet", ".hydra.next/pairs.parquet"])
def test_an_input_among_the_command_lines_own_files_is_refused_before_they_are_written(
    tmp_path: Path, name: str
) -> None:
    """The command line's log, lock and configuration folders in the run directory are written
    before anything is read (the log's first lines, the lock's pid, the staged configuration, then
    .hydra/ replaced): an input among them is refused in one line and left as it was."""
    import pyarrow.parquet as pq
    from helpers import run_cli, seed_pairs

    pairs = tmp_path / "run" / name
    pairs.parent.mkdir(parents=True)
    pq.write_table(seed_pairs(3000, 4), pairs)
    before = digest(pairs)
    refused = run_cli(tmp_path, "data=pairs", f"data.path={pairs}", name="run")
    assert refused.rc == 2, refused.stderr
    assert refused.stderr == (
        f"gpu_hpi: error: the input {pairs} is the run's own {Path(name).parts[0]} in hydra.run.dir="
        f"{tmp_path / 'run'}, written before anything is read; choose another hydra.run.dir\n"
    )
    assert digest(pairs) == before and not (tmp_path / "run" / "summary.json").exists()


def test_save_pairs_must_be_parquet_and_is_written_only_by_a_run_that_succeeds(tmp_path: Path) -> None:
    from helpers import run_app

    sales = sales_file(tmp_path)
    csv = run_app(tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={tmp_path / 'pairs.csv'}", name="csv")
    assert csv.rc == 2 and "must name a .parquet file" in csv.stderr and not (tmp_path / "pairs.csv").exists()
    saved = tmp_path / "out" / "pairs.parquet"
    # a run refused after the pairing (a base period outside the window) leaves no pairs file
    failed = run_app(
        tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={saved}", "index.base_period=1999-01", name="bad"
    )
    assert failed.rc == 2 and not saved.exists() and not list(saved.parent.glob(".*.tmp"))
    good = run_app(tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={saved}", name="good").ok()
    assert saved.exists() and good.summary["saved_pairs"] == str(saved)
    assert "pairs.parquet" not in good.summary["outputs"]  # the run directory's files only
    # one of the run's own files: refused before the read (one file under two names left a broken set)
    run_dir = tmp_path / "own"
    for taken, said in (("index.parquet", "the output index.parquet"), (".hydra/pairs.parquet", "in .hydra/")):
        own = run_app(tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={run_dir / taken}", name="own")
        assert own.rc == 2 and own.stderr.startswith(f"gpu_hpi: error: data.save_pairs={run_dir / taken} is {said}")
        assert not [p for p in run_dir.rglob("*") if p.is_file()], own.stderr


def test_save_pairs_where_it_cannot_be_written_is_one_line_and_leaves_the_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder named like the file, or a file for its folder: refused before the read; a write that
    fails anyway (/proc for root): one line, exit 2, the run directory's earlier set kept (tracebacks before)."""
    from helpers import run_app

    from gpu_hpi.app import outputs

    sales = sales_file(tmp_path)
    (tmp_path / "folder.parquet").mkdir()
    for target, said in (("folder.parquet", "a directory"), ("sales.parquet/x.parquet", "is not a folder this run")):
        run = run_app(tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={tmp_path / target}", name="r")
        assert run.rc == 2 and "cannot write data.save_pairs=" in run.stderr and said in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1 and not (run.dir / "summary.json").exists()
    earlier = (run_app(tmp_path, *SALES, f"data.path={sales}", name="kept").ok().dir / "summary.json").read_text()

    def refuse(*args: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs, "save_pairs", refuse)
    failed = run_app(tmp_path, *SALES, f"data.path={sales}", f"data.save_pairs={tmp_path / 'p.parquet'}", name="kept")
    assert failed.rc == 2 and failed.stderr.startswith("gpu_hpi: error: cannot write data.save_pairs="), failed.stderr
    assert "Permission denied" in failed.stderr and failed.stderr.count("\n") == 1
    assert (failed.dir / "summary.json").read_text() == earlier
    assert not list(failed.dir.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_outputs_in_an_input_folder_or_over_another_runs_set_are_refused(tmp_path: Path) -> None:
    """A run directory (or data.save_pairs) inside a folder the run reads: the next read of the
    folder took the outputs for input. data.save_pairs inside the run directory (a rerun left it
    beside another set) or over another run's listed output (its cells.parquet replaced)."""
    import json

    from gpu_hpi.app.preflight import check_outputs
    from gpu_hpi.errors import ConfigError

    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "part.parquet").write_bytes(b"")
    pairs = ["data=pairs", f"data.path={folder}"]
    for run_dir in (folder, folder / "out" / "2024-03"):  # a folder of pairs is read with its subfolders
        said = f"the output index.parquet of hydra.run.dir={run_dir} would be read as input by data.path={folder}"
        with pytest.raises(ConfigError, match=re.escape(said)):
            check_outputs(compose_config(*pairs), run_dir)
    glob = ["data=pairs", f"data.path={folder}/*.parquet"]
    with pytest.raises(ConfigError, match=r"would be read as input by data\.path="):
        check_outputs(compose_config(*glob), folder)
    check_outputs(compose_config(*glob), folder / "run")  # a subfolder: the glob takes none of its files
    check_outputs(compose_config("data=pairs", f"data.path={folder / 'part.parquet'}"), folder / "run")  # one file
    cells = ["data=cells", f"data.path={folder}"]  # stored tables: the folder's own files alone
    check_outputs(compose_config(*cells, "output.cells=true"), folder / "run")
    with pytest.raises(ConfigError, match=re.escape(f"would be read as input by data.path={folder}")):
        check_outputs(compose_config(*cells, "output.cells=true"), folder)
    other = tmp_path / "other"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({"outputs": ["index.csv", "cells.parquet"]}))
    sales = [*SALES, f"data.path={sales_file(tmp_path)}"]
    for target, said in (
        (tmp_path / "run" / "mine.parquet", f"is in hydra.run.dir={tmp_path / 'run'}, whose files a rerun replaces"),
        (other / "cells.parquet", f"is the output cells.parquet of the run in {other} (its summary.json lists it)"),
    ):
        with pytest.raises(ConfigError, match=re.escape(f"data.save_pairs={target} {said}")):
            check_outputs(compose_config(*sales, f"data.save_pairs={target}"), tmp_path / "run")
    check_outputs(compose_config(*sales, f"data.save_pairs={other / 'pairs.parquet'}"), tmp_path / "run")


def test_the_configuration_folders_are_the_ones_hydra_writes() -> None:
    """The run directory's configuration folders that the checks and the commit name: .hydra/ and
    conf/config.yaml's hydra.output_subdir, where the command line stages it."""
    from omegaconf import OmegaConf

    from gpu_hpi.app.preflight import CONFIG_FOLDERS
    from gpu_hpi.config import config_dir

    staged = OmegaConf.load(Path(config_dir()) / "config.yaml").hydra.output_subdir
    assert (".hydra", staged) == CONFIG_FOLDERS


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_column_read_twice_in_a_file_is_refused_naming_it(tmp_path: Path, fmt: str) -> None:
    """A parquet reader took the first of two same-named columns silently, the CSV reader failed
    with a traceback; now one line names the column, before anything is read."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from helpers import run_app

    names = ["group_id", "PrevYearMonth", "RecentYearMonth", "LogPriceDiff", "LogPriceDiff"]
    values = [[1, 1], ["2015-01", "2015-02"], ["2015-03", "2015-05"], [0.1, 0.1], [0.5, 0.5]]
    table = pa.Table.from_arrays([pa.array(v) for v in values], names=names)
    path = tmp_path / f"pairs.{fmt}"
    (pq.write_table if fmt == "parquet" else pacsv.write_csv)(table, path)
    run = run_app(tmp_path, "data=pairs", f"data.path={path}")
    assert (
        run.rc == 2
        and run.stderr == f"gpu_hpi: error: column 'LogPriceDiff' appears 2 times in {path}; rename all but one\n"
    )
