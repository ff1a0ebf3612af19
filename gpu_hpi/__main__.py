"""`python -m gpu_hpi [overrides]`: the Hydra application.

The overrides are composed once up front so that a bad one fails with a one-line message and
exit code 2 before Hydra starts a run; errors in the data likewise exit 2 without a traceback
(`debug=true` shows it).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import config_dir, register_configs
from .errors import GpuHpiError

EXIT_BAD_INPUT = 2
log = logging.getLogger("gpu_hpi")


def _one_line(exc: BaseException) -> str:
    """A single line out of Hydra's / OmegaConf's multi-line messages."""
    if isinstance(exc, MissingConfigException):
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        head = lines[0].split(": ", 1)[-1]
        options = [ln for ln in lines[2:] if not ln.startswith(("Config search path", "provider=")) and ln != "schema"]
        available = [ln for ln in options if "Available" not in ln]
        return f"{head} (available: {', '.join(available)})" if available else head
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    first = str(exc).splitlines()[0].rstrip(".")
    if isinstance(exc, OmegaConfBaseException) and getattr(exc, "full_key", None):
        first = f"{first.split(':')[0]}: {exc.full_key}"
    return f"{first}: {str(cause).splitlines()[0]}" if cause else first


def _check_overrides(overrides: list[str]) -> str | None:
    """Compose the config with these overrides; the one-line error, or None if it is valid."""
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base=None, job_name="gpu_hpi"):
            cfg = compose(config_name="config", overrides=overrides)
            OmegaConf.to_container(cfg, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        return _one_line(exc)
    return None


@hydra.main(config_path=None, config_name="config", version_base=None)
def _app(cfg: DictConfig) -> None:
    from .pipeline import run  # imported here so that config errors never pay for numpy/pyarrow

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = run(cfg, out_dir, startup_s=process_age())
    except GpuHpiError as exc:
        if cfg.debug:
            raise
        print(f"gpu_hpi: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    _print_summary(summary, out_dir)


def process_age() -> float | None:
    """Seconds since this process started (interpreter start-up, imports, Hydra's composition), from
    Linux's /proc; None where that is not available."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    lines = [
        f"gpu_hpi: {summary['n_pairs_used']:,} of {summary['n_pairs_read']:,} pairs, {summary['n_groups']} group(s), "
        f"{summary['n_periods']} periods {summary['first_period']}..{summary['last_period']} "
        f"(base {summary['base_period']} = 100)",
        f"  method {summary['method']}, solver {summary['solver']}, backend {summary['backend']} ({summary['device']})",
    ]
    if summary["dropped"]:
        lines.append("  dropped: " + ", ".join(f"{k} {v:,}" for k, v in summary["dropped"].items()))
    if "max_abs_error_vs_true_log_index" in summary:
        lines.append(f"  max |error| against the true log index: {summary['max_abs_error_vs_true_log_index']:.4f}")
    total = sum(summary["timings_s"].values())
    lines.append(f"  time {total:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in summary['timings_s'].items())})")
    lines.append(f"  outputs: {out_dir}/{{{','.join(summary['outputs'])}}}")
    print("\n".join(lines))


def main() -> None:
    register_configs()
    args = sys.argv[1:]
    if not any(a.startswith("-") for a in args):  # Hydra's own flags (--help, --cfg job, -m) pass through
        problem = _check_overrides(args)
        if problem:
            print(f"gpu_hpi: error: {problem}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
    sys.argv = [sys.argv[0], f"--config-dir={config_dir()}", *sys.argv[1:]]
    _app()


if __name__ == "__main__":
    main()
