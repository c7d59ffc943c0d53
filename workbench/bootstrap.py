"""Confidence intervals for figures made of consecutive, correlated measurements.

Consecutive latencies (or paired rounds) on a shared machine are not independent: a slow spell
lasts seconds and covers many of them. Resampling single values as if they were independent gives
intervals far too narrow (a zero-width interval on a noisy machine), so whole blocks of consecutive
values are resampled instead: the moving block bootstrap (Kuensch 1989). Block length grows as the
cube root of the series, the usual rate for interval estimates.
"""

import math

import numpy as np

RESAMPLES = 1000


def block_length(n: int) -> int:
    return max(1, min(n, round(n ** (1 / 3) * 2)))


def block_indices(n: int, rng: np.random.Generator, length: int | None = None) -> np.ndarray:
    """Indices of one moving-block resample of a series of n values: random contiguous blocks,
    concatenated and cut to n."""
    length = length or block_length(n)
    starts = rng.integers(0, n - length + 1, math.ceil(n / length))
    return (starts[:, None] + np.arange(length)[None, :]).ravel()[:n]


def interval(statistic, *series: np.ndarray, seed: int = 0, level: float = 0.95,
             resamples: int = RESAMPLES, paired: bool | None = None) -> tuple[float, float, float]:
    """statistic(*series), and its percentile interval at `level` over moving-block resamples.

    Series of equal length are resampled with the same indices (their values are paired, as the
    rounds of a paired run are) unless `paired` is False (two runs that happen to have as many
    windows); series of different lengths are always resampled independently."""
    arrays = [np.asarray(s, np.float64) for s in series]
    if any(len(a) < 2 for a in arrays):
        raise ValueError("a bootstrap interval needs at least two values per series")
    point = float(statistic(*arrays))
    rng = np.random.default_rng(seed)
    paired = len({len(a) for a in arrays}) == 1 and paired is not False
    values = np.empty(resamples)
    for i in range(resamples):
        if paired:
            idx = block_indices(len(arrays[0]), rng)
            values[i] = statistic(*(a[idx] for a in arrays))
        else:
            values[i] = statistic(*(a[block_indices(len(a), rng)] for a in arrays))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return point, float(low), float(high)
