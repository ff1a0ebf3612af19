"""Sums over equal keys (data/keys.py): the packed value sort and the argsort it falls back to."""

from __future__ import annotations

import numpy as np

from gpu_hpi.data.keys import key_order


def test_key_order_packed_and_argsort() -> None:
    """The packed value sort and the argsort it falls back to (keys too wide) sort alike, stably."""
    rng = np.random.default_rng(3)
    for high in (50, 2**40, 2**62):  # the last leaves no room for the positions: argsort
        key = rng.integers(0, high, 1000, dtype=np.int64)
        key[::7] = key[0]  # ties
        order, sorted_key = key_order(np, key)
        np.testing.assert_array_equal(sorted_key, np.sort(key))
        np.testing.assert_array_equal(key[order], sorted_key)
        if high < 2**62:  # the packed sort keeps tied keys in position order
            np.testing.assert_array_equal(order, np.argsort(key, kind="stable"))
