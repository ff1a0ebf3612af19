"""`python -m gpu_hpi` (__main__.py): a warning is one line, the process's age is the start-up's."""

from __future__ import annotations

from gpu_hpi.__main__ import process_age


def test_warnings_are_one_line() -> None:
    from gpu_hpi.__main__ import _one_line_warning

    text = _one_line_warning(UserWarning("3 groups skipped: a, b\nmore detail"), UserWarning, "file.py", 12)
    assert text == "gpu_hpi: warning: 3 groups skipped: a, b\n"


def test_process_age_counts_from_the_process_start() -> None:
    first = process_age()
    second = process_age()
    assert first is not None and second is not None and 0.0 < first <= second
