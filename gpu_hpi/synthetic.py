"""A simulated repeat-sales market with a known true index, for the embedded default, tests and
benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticMarket:
    """true_log_index: (G, T) float64, 0 at period 0; per-region random walks around a common trend.
    Pairs are generated in reproducible chunks by `pairs(chunk)`."""

    n_pairs: int
    n_periods: int
    n_groups: int
    seed: int
    noise_sd: float
    mean_holding: float
    true_log_index: np.ndarray

    @classmethod
    def create(
        cls,
        n_pairs: int,
        n_periods: int = 123,
        n_groups: int = 17,
        seed: int = 0,
        noise_sd: float = 0.1,
        mean_holding: float = 30.0,
    ) -> SyntheticMarket:
        if n_pairs < 0 or n_periods < 2 or n_groups < 1 or mean_holding < 1 or not noise_sd >= 0:
            raise ValueError("need n_pairs >= 0, n_periods >= 2, n_groups >= 1, mean_holding >= 1, noise_sd >= 0")
        rng = np.random.default_rng(seed)
        common = np.cumsum(rng.normal(0.003, 0.01, n_periods))  # ~3.6% a year, some monthly noise
        regional = np.cumsum(rng.normal(0.0, 0.004, (n_groups, n_periods)), axis=1)
        log_index = common + regional
        log_index -= log_index[:, :1]
        return cls(n_pairs, n_periods, n_groups, seed, noise_sd, mean_holding, log_index)

    def pairs(self, chunk: int = 1 << 22) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (group int32, prev int16, recent int16, y float64) chunks, N pairs in all.

        Holding periods are geometric (mean `mean_holding`, below the window length), the first
        sale uniform over the periods that leave room for the holding; y = true difference + noise.
        """
        t = self.n_periods
        for k, start in enumerate(range(0, self.n_pairs, chunk)):
            n = min(chunk, self.n_pairs - start)
            rng = np.random.default_rng([self.seed, k])
            hold = rng.geometric(1.0 / self.mean_holding, n)
            while (long := hold >= t).any():
                hold[long] = rng.geometric(1.0 / self.mean_holding, int(long.sum()))
            prev = (rng.random(n) * (t - hold)).astype(np.int16)
            recent = (prev + hold).astype(np.int16)
            group = rng.integers(0, self.n_groups, n, dtype=np.int32)
            flat = self.true_log_index.ravel()
            row = group.astype(np.int64) * t
            y = flat[row + recent] - flat[row + prev] + rng.normal(0.0, self.noise_sd, n)
            yield group, prev, recent, y

    def prices(self, y: np.ndarray, chunk_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sale prices consistent with y: a log-normal first price (median 300M, as KRW) times exp(y)."""
        rng = np.random.default_rng([self.seed, chunk_index, 1])
        first = np.exp(rng.normal(np.log(3e8), 0.6, y.shape[0]))
        return first, first * np.exp(y)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All pairs at once: (group, prev, recent, y)."""
        parts = list(self.pairs())
        if not parts:
            return (np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.int16), np.zeros(0))
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))  # type: ignore[return-value]
