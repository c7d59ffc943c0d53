import math

import numpy as np
import pytest

from workbench.load.stats import percentile, stability, summarize, window_length, windows

ONE_TO_TEN = np.arange(1, 11, dtype=np.float64)


@pytest.mark.parametrize("p, expected", [(50, 5), (90, 9), (95, 10), (99, 10), (99.9, 10), (10, 1), (0, 1)])
def test_percentile_nearest_rank(p, expected):
    assert percentile(ONE_TO_TEN, p) == expected


def test_percentile_of_one_value_is_that_value():
    for p in (50, 99.9):
        assert percentile(np.array([7.0]), p) == 7.0


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile(np.array([]), 50))


def test_percentile_p99_9_of_a_thousand_values():
    assert percentile(np.arange(1, 1001, dtype=np.float64), 99.9) == 999


def test_summarize_in_milliseconds():
    s = summarize(np.arange(10, 0, -1) / 1000)
    assert set(s) == {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms", "max_ms", "mean_ms", "count"}
    assert s["p50_ms"] == pytest.approx(5)
    assert s["p90_ms"] == pytest.approx(9)
    assert s["p95_ms"] == s["p99_ms"] == s["p99_9_ms"] == s["max_ms"] == pytest.approx(10)
    assert s["mean_ms"] == pytest.approx(5.5)
    assert s["count"] == 10


def test_summarize_nothing():
    s = summarize(np.array([]))
    assert s["count"] == 0 and math.isnan(s["p50_ms"]) and math.isnan(s["max_ms"]) and math.isnan(s["mean_ms"])


def test_windows_count_completions_per_window():
    done = np.array([10.5, 11.0, 11.7, 12.2, 12.4, 12.9, 13.0, 9.9])
    latency = np.array([0.001, 0.002, 0.004, 0.003, 0.003, 0.005, 0.1, 0.1])
    out = windows(done, latency, start_s=10.0, end_s=13.0, window_s=1.0)
    assert [w["start_s"] for w in out] == [0.0, 1.0, 2.0]
    assert [w["throughput_rps"] for w in out] == [1.0, 2.0, 3.0]
    assert [w["latency_ms"] for w in out] == pytest.approx([1.0, 4.0, 5.0])


def test_windows_throughput_is_per_second_and_empty_window_is_zero():
    out = windows(np.array([0.1, 0.2, 0.3]), np.full(3, 0.01), 0.0, 1.0, 0.5)
    assert [w["throughput_rps"] for w in out] == [6.0, 0.0]
    assert math.isnan(out[1]["latency_ms"])


def _w(throughput, latency):
    return [{"throughput_rps": t, "latency_ms": ms} for t, ms in zip(throughput, latency)]


def test_stable_within_ten_percent():
    verdict = stability(_w([100, 104, 108], [10, 10.5, 10.8]))
    assert verdict["stable"] is True


def test_only_the_last_windows_count():
    assert stability(_w([10, 100, 104, 108], [99, 10, 10.5, 10.8]))["stable"] is True


def test_unstable_throughput():
    verdict = stability(_w([100, 100, 120], [10, 10, 10]))
    assert verdict["stable"] is False
    assert "throughput max/min 1.20" in verdict["reason"] and "latency" not in verdict["reason"]


def test_unstable_latency():
    verdict = stability(_w([100, 100, 100], [10, 12, 10]))
    assert verdict["stable"] is False
    assert "p99 latency max/min 1.20" in verdict["reason"] and "throughput" not in verdict["reason"]


def test_empty_window_is_unstable():
    verdict = stability(_w([100, 0, 100], [10, math.nan, 10]))
    assert verdict["stable"] is False and "inf" not in verdict["reason"]
    assert "throughput: a window of the last 3 had no completed request" in verdict["reason"]
    assert "p99 latency: a window of the last 3 had no completed request" in verdict["reason"]


def test_too_few_windows_is_unstable_with_a_reason():
    verdict = stability(_w([100, 100], [10, 10]))
    assert verdict == {"stable": False, "reason": "only 2 windows; 3 needed"}


@pytest.mark.parametrize("duration, expected", [(60, 5.0), (15, 5.0), (9, 3.0), (3, 1.0)])
def test_window_length(duration, expected):
    assert window_length(duration) == pytest.approx(expected)


@pytest.mark.parametrize("duration", [3.0, 5.0, 6.0, 7.0, 9.0, 10.0, 12.0])
def test_short_run_is_cut_in_three_windows(duration):
    assert len(windows(np.array([]), np.array([]), 0.0, duration, window_length(duration))) == 3
