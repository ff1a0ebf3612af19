"""README.md as a user types it.

- Its Python examples (```python blocks, written as `>>>` examples) run as doctests, in order, in
  one namespace.
- Every command of its ```bash, ```sh and ```console blocks runs, in README order, in one fresh
  bash (no profile, no rc file) in a temporary directory set up as after the quick start: a
  virtual environment `.venv` whose interpreter imports this checkout and whose `bin/` holds the
  `gpu-hpi` command. `/data/...` paths are replaced by small generated files (DATA below). A
  command is a line with its `\\` continuations (comment lines are skipped, a `$ ` prompt is
  dropped); it must exit 0, or the code a trailing `# exit N` names. These are the suite's real
  `gpu-hpi` processes: a run prints its summary first (its INFO lines go to its log file only)
  and writes every output, a refusal is one line, and DuckDB's spill directories are gone when
  the processes end.
- A block right after a `<!-- not run: why -->` line is not run: the quick start itself (it sets
  up a virtual environment; test_quick_start_is_two_commands checks it), and what needs a GPU, a
  cluster or runs the test suite.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from helpers import OUTPUTS, REPO

from gpu_hpi.synthetic import SyntheticMarket

README = REPO / "README.md"
SHELLS = ("bash", "sh", "console", "shell")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->$")
EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")
QUICK_START = [
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/python -m gpu_hpi",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test,dask]' && .venv/bin/python -m pytest -n auto",
]


@dataclass(frozen=True)
class Block:
    section: str  # the `## ` heading above it
    lang: str
    text: str
    not_run: str | None  # the reason of a `<!-- not run: ... -->` line right before it


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    section, previous, fence, body, skip = "", "", None, [], None
    for line in text.splitlines():
        if fence is not None:
            if line.strip() == "```":
                found.append(Block(section, fence, "\n".join(body), skip))
                fence = None
            else:
                body.append(line)
            continue
        if line.startswith("```"):
            fence, body = line[3:].strip(), []
            match = NOT_RUN.match(previous.strip())
            skip = match.group(1) if match else None
        elif line.startswith("## "):
            section = line[3:].strip()
        if line.strip():
            previous = line
    assert fence is None, "a fence is not closed"
    return found


def commands(block: Block) -> list[tuple[str, int]]:
    """(command, expected exit code) of each command of a shell block."""
    out: list[tuple[str, int]] = []
    pending: list[str] = []
    for raw in block.text.splitlines():
        line = raw[2:] if raw.startswith("$ ") else raw
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        if not line.rstrip().endswith("\\"):
            command = "\n".join(pending)
            code = EXIT.search(pending[-1])
            out.append((command, int(code.group(1)) if code else 0))
            pending = []
    assert not pending, f"a continuation line ends the block: {block.text}"
    return out


ALL = blocks(README.read_text())


def test_quick_start_is_two_commands() -> None:
    """The quick start: one command sets up and runs the default job, one sets up and runs the tests."""
    quick = [b for b in ALL if b.section == "Quick start" and b.not_run]
    assert [c for b in quick for c, _ in commands(b)] == QUICK_START


def test_every_example_block_is_run_or_says_why_not() -> None:
    langs = {b.lang for b in ALL}
    assert langs <= {*SHELLS, "python", ""}, langs
    assert not [b.text for b in ALL if b.lang == ""], "a block without a language"
    run = [b for b in ALL if b.lang in SHELLS and not b.not_run]
    assert {b.section for b in run} >= {"Quick start", "Your own pairs", "Raw sale records", "Monthly updates"}
    assert all(not b.not_run for b in ALL if b.lang == "python")


def test_python_examples_run_as_doctests() -> None:
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    names: dict[str, object] = {"__name__": "readme"}
    examples = [b for b in ALL if b.lang == "python"]
    assert examples
    for k, block in enumerate(examples):
        test = parser.get_doctest(block.text, names, f"README python block {k + 1}", str(README), 0)
        assert test.examples, f"a python block without >>> examples: {block.text[:200]}"
        runner.run(test, clear_globs=False)
        names.update(test.globs)  # a DocTest runs in a copy: the next block sees this one's names
    result = runner.summarize(verbose=False)
    assert result.failed == 0 and result.attempted > 5, result


# --------------------------------------------------------------------------------------------------
# the shell commands


def _month_starts(months: np.ndarray) -> np.ndarray:
    return (np.datetime64("2014-01", "M") + months.astype(np.int64)).astype("datetime64[ns]")


def _seed_pairs(n: int, seed: int) -> pd.DataFrame:
    """Simulated pairs in the seed's schema over 2014-01..2024-03 (123 months, 17 regions)."""
    group, prev, recent, y = SyntheticMarket.create(n, 123, 17, seed=seed).arrays()
    return pd.DataFrame(
        {
            "group_id": group.astype(np.int64),
            "PrevYearMonth": _month_starts(prev),
            "RecentYearMonth": _month_starts(recent),
            "LogPriceDiff": y,
        }
    )


def _sales(n_properties: int, seed: int) -> pd.DataFrame:
    """Sale records in the README's columns: 1..5 sales of each property over 2014-01..2024-03."""
    rng = np.random.default_rng(seed)
    sales = rng.integers(1, 6, n_properties)
    prop = np.repeat(np.arange(n_properties), sales)
    month = rng.integers(0, 123, prop.size)
    trend = np.cumsum(rng.normal(0.003, 0.01, 123))
    level = rng.normal(19.5, 0.5, n_properties)
    day = (np.datetime64("2014-01", "M") + month).astype("datetime64[D]") + rng.integers(0, 28, prop.size)
    return pd.DataFrame(
        {
            "complex_id": prop // 40,
            "unit_area": 59.0 + (prop % 4) * 25.0,
            "building": np.asarray(["101", "102"], dtype=object)[(prop // 4) % 2],
            "floor": (prop // 8) % 5 + 1,
            "contract_date": day.astype("datetime64[ns]"),
            "price": np.exp(level[prop] + trend[month] + rng.normal(0, 0.05, prop.size)).round(-4),
            "sigungu": np.asarray(["Gangnam-gu", "Mapo-gu", "Nowon-gu"], dtype=object)[(prop // 40) % 3],
        }
    )


def write_data(root: Path) -> dict[str, str]:
    """The README's /data/... files, small, under root/data; the mapping of path prefixes."""
    data = root / "data"
    (data / "history").mkdir(parents=True)
    (data / "new").mkdir()
    _seed_pairs(20_000, seed=3).to_parquet(data / "pairs.parquet", index=False)
    history = _seed_pairs(20_000, seed=4)
    history.iloc[:10_000].to_parquet(data / "history" / "part-0.parquet", index=False)
    history.iloc[10_000:].to_parquet(data / "history" / "part-1.parquet", index=False)
    rng = np.random.default_rng(5)
    prev = rng.integers(60, 123, 2_000)
    pd.DataFrame(  # the new month's pairs: the later sale in 2024-04
        {
            "group_id": rng.integers(0, 17, prev.size),
            "PrevYearMonth": _month_starts(prev),
            "RecentYearMonth": _month_starts(np.full(prev.size, 123)),
            "LogPriceDiff": 0.003 * (123 - prev) + rng.normal(0, 0.1, prev.size),
        }
    ).to_parquet(data / "new" / "2024-04.parquet", index=False)
    _sales(6_000, seed=6).to_parquet(data / "sales.parquet", index=False)
    return {"/data/": f"{data}/"}


def make_venv(root: Path) -> Path:
    """`.venv` as the quick start leaves it, without installing: its interpreter imports this
    checkout (and the test interpreter's packages) through a .pth file; `gpu-hpi` as pip writes it."""
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    others = [p for p in sys.path if p.endswith("site-packages")]
    (site / "gpu_hpi_checkout.pth").write_text("\n".join([str(REPO), *others]) + "\n")
    script = venv / "bin" / "gpu-hpi"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom gpu_hpi.__main__ import cli\nsys.exit(cli())\n")
    script.chmod(0o755)
    return venv


def test_shell_commands_run_as_typed(tmp_path: Path) -> None:
    mapping = write_data(tmp_path)
    make_venv(tmp_path)
    todo = [(c, code) for b in ALL if b.lang in SHELLS and not b.not_run for c, code in commands(b)]
    assert any(c.startswith("source .venv/bin/activate") for c, _ in todo)
    logs = tmp_path / ".readme"
    logs.mkdir()
    lines = []
    for k, (command, _) in enumerate(todo):
        for prefix, path in mapping.items():
            command = re.sub(rf"(?<=[=\s']){re.escape(prefix)}", path, command)
        lines.append(f"{{ {command}\n}} >{logs}/{k}.out 2>&1 </dev/null; echo $? >{logs}/{k}.rc")
    script = tmp_path / ".readme.sh"
    script.write_text("\n".join(lines) + "\n")
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "USER")
    keep += ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # the suite's (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if "venv" not in p)
    scratch = tmp_path / ".scratch"  # where DuckDB spills: its runs' exit handlers empty it
    scratch.mkdir()
    env["TMPDIR"] = str(scratch)
    shell = ["bash", "--noprofile", "--norc", str(script)]
    proc = subprocess.run(shell, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for k, (command, expected) in enumerate(todo):
        rc = int((logs / f"{k}.rc").read_text())
        output = (logs / f"{k}.out").read_text()
        assert rc == expected, f"{command}\nexit {rc}, README says {expected}:\n{output[-3000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-3000:]}"
        if rc == 2:  # a refusal is one line
            assert output.count("\n") == 1 and output.startswith("gpu_hpi: error: "), output
        if command.startswith("gpu-hpi") and rc == 0 and "--help" not in command:
            # the summary first, flushed before the process ends without the interpreter's teardown;
            # the INFO lines in the run's log file only
            assert output.startswith("gpu_hpi: ") and "][gpu_hpi][INFO]" not in output, output
    assert not list(scratch.iterdir())
    run = tmp_path / "out" / "2024-03"
    assert all((run / name).stat().st_size > 0 for name in OUTPUTS)
    assert "][gpu_hpi][INFO]" in (run / "gpu_hpi.log").read_text()
    # what the README says of these runs
    again, first = (pd.read_parquet(tmp_path / "runs" / d / "index.parquet") for d in ("2024-04-again", "2024-04"))
    pd.testing.assert_frame_equal(again, first)
    assert (tmp_path / "data" / "sales-pairs.parquet").is_file()
