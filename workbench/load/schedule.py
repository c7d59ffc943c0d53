"""Open-loop arrival schedules: Poisson arrivals from a fixed seed, so every engine gets the same."""

import numpy as np


def poisson_arrivals(rate: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """Send times in seconds from the start, with exponential gaps of mean 1/rate, all < duration_s."""
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    rng = np.random.default_rng(seed)
    expected = int(rate * duration_s)
    times = np.cumsum(rng.exponential(1 / rate, expected + 10 * int(np.sqrt(expected)) + 10))
    while times[-1] < duration_s:  # rare: extend with more gaps from the same stream
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1 / rate, expected + 10))])
    return times[times < duration_s]
