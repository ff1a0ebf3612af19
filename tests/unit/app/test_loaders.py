"""app/loaders.py's SharedReads: the jobs of a sweep share one read where what they read is the
same, and each job's outputs equal those of a job that read for itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import compose_config, seed_pairs

from gpu_hpi.app import pipeline
from gpu_hpi.app.loaders import SharedReads

pytestmark = pytest.mark.filterwarnings("ignore::gpu_hpi.IdentificationWarning")


def index(out: Path) -> np.ndarray:
    return pq.read_table(out / "index.parquet").column("log_index").to_numpy()


def test_a_sweep_reads_once_and_each_job_equals_its_own_read(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    pq.write_table(seed_pairs(20_000, seed=3), path)
    common = ("data=pairs", f"data.path={path}", "backend=cpu", "output.plot=false")
    reads = SharedReads()
    jobs = [("method=bmn",), ("method=case_shiller", "index.base_period=2015-01"), ("method=robust",), ("method=bmn",)]
    summaries = [
        pipeline.run(compose_config(*common, *job), tmp_path / f"sweep{k}", reads=reads) for k, job in enumerate(jobs)
    ]
    # the second job reuses the first's table; robust keeps the pairs: a read of its own, which the
    # last (table-only) job then reuses
    assert [s.get("reused_read", False) for s in summaries] == [False, True, False, True]
    assert "read_and_table" not in summaries[1]["timings_s"]
    for k, job in enumerate(jobs):
        alone = tmp_path / f"alone{k}"
        summary = pipeline.run(compose_config(*common, *job), alone)
        np.testing.assert_array_equal(index(tmp_path / f"sweep{k}"), index(alone))
        assert summaries[k]["dropped"] == summary["dropped"] and summaries[k]["n_pairs_read"] == summary["n_pairs_read"]


def test_other_data_or_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "pairs.parquet"
    pq.write_table(seed_pairs(5_000, seed=1), path)
    common = ("data=pairs", f"data.path={path}", "backend=cpu", "output.plot=false")
    reads = SharedReads()
    pipeline.run(compose_config(*common), tmp_path / "a", reads=reads)
    other = pipeline.run(compose_config(*common, "data.end=2016-12"), tmp_path / "b", reads=reads)
    assert not other.get("reused_read") and reads.key is not None
    pq.write_table(seed_pairs(5_000, seed=2), path)  # the same name, other pairs
    changed = pipeline.run(compose_config(*common, "data.end=2016-12"), tmp_path / "c", reads=reads)
    assert not changed.get("reused_read")
    np.testing.assert_array_equal(index(tmp_path / "c"), index(pipeline_alone(tmp_path, common)))


def pipeline_alone(tmp_path: Path, common: tuple[str, ...]) -> Path:
    out = tmp_path / "alone"
    pipeline.run(compose_config(*common, "data.end=2016-12"), out)
    return out
