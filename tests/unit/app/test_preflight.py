"""What the command line checks before it imports the run's modules (app/preflight.py): dates of an
implausible year in the parquet footers, and whether a GPU run will use CuPy's arrays (the warm-up's
hint)."""

from __future__ import annotations

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
        "transactions": ["data=transactions", "data.columns.property=p", "data.columns.date=d", "data.columns.price=x"],
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
