"""End to end: `python -m gpu_hpi` as a user runs it, through Hydra's own run (main(), in this
process or as a real subprocess): the override checks it makes before the run, a memory cap. Every
test here is marked slow (tests/conftest.py); the real `gpu-hpi` processes that write outputs are
the README's commands (test_readme.py), and the behaviour of the job itself is tested in-process
through hydra.compose + pipeline.run (tests/unit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    START_MONTH,
    assert_frames_equal,
    expected_frame,
    make_pairs,
    q,
    run_cli,
    seed_frame,
)


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
