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


class Stopped(BaseException):  # a signal, like KeyboardInterrupt: past every `except Exception`
    """SIGTERM, raised where the run is (as SIGINT raises KeyboardInterrupt)."""


_STOPS: list[int] = []  # the signals received by this process's run, in order


def record_stop(signum: int) -> None:
    """Record a SIGINT / SIGTERM without raising (while the outputs are committed)."""
    _STOPS.append(signum)


def request_stop(signum: int) -> None:
    """Record a SIGINT / SIGTERM, then raise where the run is. An exception raised while Python runs a
    finaliser or a callback is printed and dropped, so the record is checked again before outputs
    are committed (`check_stop`)."""
    _STOPS.append(signum)
    raise_stop()


def raise_stop() -> None:
    """KeyboardInterrupt for a recorded SIGINT, Stopped for SIGTERM; nothing if none was received."""
    import signal

    if _STOPS:
        raise KeyboardInterrupt if _STOPS[0] == signal.SIGINT else Stopped


def clear_stops() -> None:
    """Forget the signals of a finished run (a process that runs several, such as a test)."""
    _STOPS.clear()
