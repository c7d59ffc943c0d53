import numpy as np
import pytest

from workbench.load.schedule import poisson_arrivals


def test_same_seed_same_schedule():
    assert np.array_equal(poisson_arrivals(500, 2.0, seed=3), poisson_arrivals(500, 2.0, seed=3))


def test_other_seed_other_schedule():
    a, b = poisson_arrivals(500, 2.0, seed=3), poisson_arrivals(500, 2.0, seed=4)
    assert len(a) != len(b) or not np.array_equal(a, b)


@pytest.mark.parametrize("rate, duration", [(500, 2.0), (0.5, 3.0), (1e5, 0.1)])
def test_times_sorted_and_within_duration(rate, duration):
    times = poisson_arrivals(rate, duration, seed=1)
    assert np.all(times >= 0) and np.all(times < duration)
    assert np.all(np.diff(times) >= 0)


def test_mean_rate_over_a_large_sample():
    assert abs(len(poisson_arrivals(1000, 20.0, seed=7)) - 20000) <= 1000


@pytest.mark.parametrize("rate", [0, -1.0, float("nan")])
def test_non_positive_rate_rejected(rate):
    with pytest.raises(ValueError, match="rate must be positive"):
        poisson_arrivals(rate, 1.0)
