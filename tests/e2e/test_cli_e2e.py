"""End to end: `python -m gpu_hpi` as a user runs it, through Hydra's own run (main(), in this
process or as a real subprocess): its outputs and exit, the override checks it makes before the
run, a memory cap. Every test here is marked slow (tests/conftest.py); the behaviour of the job
itself is tested in-process through hydra.compose + pipeline.run (tests/unit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    OUTPUTS,
    START_MONTH,
    assert_frames_equal,
    expected_frame,
    make_pairs,
    q,
    run_cli,
    seed_frame,
)


def test_default_run_in_a_real_process(tmp_path: Path) -> None:
    """`python -m gpu_hpi` itself (the other tests call its main() in-process), which ends without the
    interpreter's teardown: exit 0, every output, the summary printed and flushed, DuckDB's spill
    directory removed by the exit handlers; a bad override exits 2 with one line."""
    run = run_cli(tmp_path, "data.n_pairs=20000", plot=True, subprocess_run=True).ok()
    for name in OUTPUTS:
        assert (run.dir / name).is_file() and (run.dir / name).stat().st_size > 0, name
    # the summary is the first line: the INFO lines are in the run's log file only
    assert run.stdout.startswith("gpu_hpi: 20,000 of 20,000 pairs, 17 group(s), 123 periods"), run.stdout
    assert "][gpu_hpi][INFO]" in (run.dir / "gpu_hpi.log").read_text()
    run_cli(tmp_path, "solver=foo", name="bad", subprocess_run=True).assert_failed("solver")

    path = tmp_path / "pairs.parquet"
    seed_frame(make_pairs(n=2000, seed=3)).to_parquet(path, index=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    files = run_cli(
        tmp_path, "data=pairs", f"data.path={q(path)}", name="file", subprocess_run=True, env={"TMPDIR": str(scratch)}
    )
    assert files.ok().stdout.startswith("gpu_hpi: 2,000 of 2,000 pairs"), files.stdout
    assert (files.dir / "summary.json").is_file() and not list(scratch.iterdir())


# a real subprocess, its address space capped
def test_directory_with_an_empty_part_file(tmp_path: Path) -> None:
    pairs = make_pairs(n=3000, seed=10)
    df = seed_frame(pairs, group="int")
    parts = tmp_path / "parts"
    parts.mkdir()
    df.iloc[:0].to_parquet(parts / "part-0.parquet", index=False)
    df.to_parquet(parts / "part-1.parquet", index=False)
    run = run_cli(tmp_path, "data=pairs", f"data.path={q(parts)}", "backend=cpu", mem_limit=4 << 30, timeout=60)
    run.ok()
    want = expected_frame(pairs["prev"] + START_MONTH, pairs["recent"] + START_MONTH, pairs["y"], pairs["g"].to_numpy())
    assert_frames_equal(run.frame, want)


def test_error_unknown_solver(tmp_path: Path) -> None:
    run_cli(tmp_path, "solver=foo", "data.n_pairs=1000", plot=True).assert_failed("solver/foo", "lsqr")


def test_error_non_integer_n_pairs(tmp_path: Path) -> None:
    run_cli(tmp_path, "data.n_pairs=abc", plot=True).assert_failed("data.n_pairs", "abc")


def test_error_pairs_without_path(tmp_path: Path) -> None:
    run_cli(tmp_path, "data=pairs", plot=True).assert_failed("data.path")


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("method=foo", ("method/foo", "case_shiller", "arithmetic")),
        ("method.stage2=cube", ("method.stage2", "cube", "squared", "absolute")),
        ("method.quadratic=maybe", ("method.quadratic", "maybe")),
        ("data.pairing=bogus", ("data.pairing", "bogus", "consecutive")),
    ],
)
def test_bad_option_values(tmp_path: Path, override: str, fragments: tuple[str, ...]) -> None:
    data = ["data=transactions", "data.path=sales.parquet"] if override.startswith("data.") else []
    run_cli(tmp_path, *data, override).assert_failed(*fragments)
