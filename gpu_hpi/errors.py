"""Error and warning classes: every failure a user can cause has its own, with a one-line message."""


class GpuHpiError(Exception):
    """Base class of the errors gpu_hpi raises for bad input or configuration (CLI exit code 2)."""


class DataError(GpuHpiError):
    """The input data cannot be used: missing file or column, wrong type, invalid pairs under `strict`."""


class ConfigError(GpuHpiError):
    """An option value that cannot work (unknown solver, impossible base period, ...)."""


class BackendUnavailableError(GpuHpiError):
    """The requested backend cannot run on this machine (e.g. `gpu` without CuPy or a CUDA device)."""


class IdentificationWarning(UserWarning):
    """Some periods (or whole groups) could not be identified: their index is NaN or skipped."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at its iteration limit before reaching its tolerance."""
