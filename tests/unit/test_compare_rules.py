"""`report --compare`'s statistics (#29 item 4): windows in time order, a moving-block bootstrap,
and no verdict inside the runs' own noise, with too few windows, or across machines; a real change
beyond all of that is still called (the positive control). With more runs a side, the spread
between runs is measured (Student's t on the runs' logs)."""

import numpy as np

from workbench.report import compare
from workbench.report.run import Run


def _latency(raw_us, kind="closed") -> dict:
    return {"scenario": {"kind": kind, "concurrency": 1}, "result": {"raw_latency_us": list(raw_us)}}


def _offline(throughputs) -> dict:
    return {"scenario": {"kind": "offline", "batch": 8},
            "result": {"windows": [{"throughput_rps": t} for t in throughputs]}}


def _spelled(rng, n=4000, base=100.0, spell=1.0, at=(0.45, 0.6)) -> np.ndarray:
    """Latencies (us) with a slow spell over a stretch of the run: consecutive values correlated."""
    values = rng.normal(base, 3, n)
    lo, hi = int(at[0] * n), int(at[1] * n)
    values[lo:hi] *= spell
    return np.round(values)


def test_a_record_becomes_windows_in_time_order():
    series = compare.series(_latency(range(1, 1001)))
    assert series.lower_is_better and len(series.windows) == compare.MAX_WINDOWS
    assert np.all(np.diff(series.windows) > 0)  # consecutive chunks, not a shuffle
    assert len(compare.series(_latency(range(20))).windows) == 4  # at least 5 values a window
    offline = compare.series(_offline([100.0, 110.0, 90.0]))
    assert not offline.lower_is_better and list(offline.windows) == [100.0, 110.0, 90.0]


def test_the_midmean_moves_where_a_median_of_whole_microseconds_would_not():
    a = np.array([27] * 60 + [28] * 40)
    b = np.array([27] * 55 + [28] * 45)
    assert np.median(a) == np.median(b) == 27
    assert compare.midmean(a) < compare.midmean(b)


def test_latencies_that_vary_never_give_a_zero_width_interval():
    # whole-microsecond latencies whose median never moves: the old per-request bootstrap gave [x%, x%]
    rng = np.random.default_rng(3)
    a = _latency(rng.choice([27, 28], 2000, p=[0.6, 0.4]))
    b = _latency(rng.choice([27, 28], 2000, p=[0.6, 0.4]))
    found = compare.change([compare.series(a)], [compare.series(b)])
    assert found.low < found.high
    assert found.verdict == compare.NO_CHANGE


def test_three_offline_windows_are_too_few_to_tell_even_for_a_big_change():
    found = compare.change([compare.series(_offline([100.0, 101.0, 99.0]))],
                           [compare.series(_offline([300.0] * 3))])
    assert found.verdict == compare.TOO_FEW and found.ratio is None


def test_a_slow_spell_in_one_run_is_noise_not_a_regression():
    rng = np.random.default_rng(4)
    quiet = _latency(_spelled(rng))
    spelled = _latency(_spelled(rng, spell=1.4, at=(0.2, 0.7)))  # half the run 40% slower: a neighbour's job
    found = compare.change([compare.series(quiet)], [compare.series(spelled)])
    assert found.ratio > 1.1 and found.why == "runs' noise" and found.beyond > 0.3
    assert found.verdict == compare.NO_CHANGE


def test_a_real_change_beyond_the_noise_is_called_both_ways():
    rng = np.random.default_rng(5)
    a, b = _latency(_spelled(rng)), _latency(_spelled(rng, base=145.0))
    one_run = compare.ONE_RUN_A_SIDE  # a call from one run a side says so
    assert compare.change([compare.series(a)], [compare.series(b)]).verdict == "regression" + one_run
    assert compare.change([compare.series(b)], [compare.series(a)]).verdict == "improvement" + one_run
    slower, faster = _offline(rng.normal(1000, 10, 12)), _offline(rng.normal(1500, 10, 12))
    assert compare.change([compare.series(slower)], [compare.series(faster)]).verdict == "improvement" + one_run


def test_different_machines_get_no_verdict_but_keep_their_figures():
    rng = np.random.default_rng(6)
    a, b = _latency(_spelled(rng)), _latency(_spelled(rng, base=300.0))
    found = compare.change([compare.series(a)], [compare.series(b)], same=False)
    assert found.verdict == compare.OTHER_MACHINE and found.ratio > 2.5


def test_the_block_bootstrap_is_wider_than_resampling_single_values_when_values_are_correlated():
    rng = np.random.default_rng(7)
    walk = 100 + np.cumsum(rng.normal(0, 1, 400))  # strongly correlated neighbours
    _, low, high = compare.ratio_interval(walk, walk.copy(), np.mean)
    iid = np.random.default_rng(0)
    ratios = [np.mean(iid.choice(walk, 400)) / np.mean(iid.choice(walk, 400)) for _ in range(1000)]
    iid_low, iid_high = np.percentile(ratios, [2.5, 97.5])
    assert high - low > 1.5 * (iid_high - iid_low)


def _runs(*means: float, spread: float = 0.01) -> list:
    """One steady run per mean: 20 windows within +-spread of it (each run steady inside itself)."""
    rng = np.random.default_rng(int(sum(means) * 1000))
    return [compare.Series("latency (ms)", m * (1 + rng.uniform(-spread, spread, 20)), True) for m in means]


def test_one_run_per_side_calls_two_steady_processes_a_change_that_more_runs_show_is_none():
    """The 1.3x between two processes of one build (docs/BENCHMARKS.md): one run per side cannot tell
    it from a change; three per side, alternating between the two states, measure it."""
    assert compare.change(_runs(0.020), _runs(0.026)).verdict == "regression" + compare.ONE_RUN_A_SIDE
    repeated = compare.change(_runs(0.020, 0.026, 0.020), _runs(0.026, 0.020, 0.026))
    assert repeated.verdict == compare.NO_CHANGE and repeated.low < 1 < repeated.high and repeated.why == "5%"


def test_repeated_runs_call_a_change_that_every_run_shows():
    found = compare.change(_runs(0.020, 0.021, 0.0205), _runs(0.030, 0.031, 0.0295))
    assert found.verdict == "regression" and 1.3 < found.low < found.ratio < found.high < 1.6
    assert abs(found.b / found.a - found.ratio) < 1e-9  # the A and B columns are what the ratio divides
    # two runs on one side and one on the other still give an interval (one degree of freedom)
    assert compare.change(_runs(0.020, 0.0202), _runs(0.030)).verdict == "regression"
    # the machine moving further than the change withholds it
    assert compare.change(_runs(0.020, 0.021), _runs(0.030, 0.031), moved={"machine's peak moved": 0.8}).verdict == \
        "no significant change"


def test_the_between_runs_interval_widens_with_the_spread_between_runs():
    ratio, low, high = compare.between_runs([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    assert ratio == low == high == 2.0  # no spread between runs: no width
    ratio, narrow_low, narrow_high = compare.between_runs([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    _, wide_low, wide_high = compare.between_runs([1.0, 1.5, 0.7], [2.0, 3.0, 1.4])
    assert wide_low < narrow_low < 2.0 < narrow_high < wide_high


def _run(*keys: tuple[str, int]) -> Run:
    return Run(None, [{"engine": "tvm", "status": "ok", "scenario": {"kind": kind, "batch": batch},
                       "result": {"raw_latency_us": [100.0] * 40}} for kind, batch in keys], {})


def test_a_row_is_compared_over_the_runs_that_measured_it_and_one_sided_rows_are_named():
    from workbench.report.compare import _by_key

    a = [_run(("latency", 1), ("latency", 8)), _run(("latency", 1))]  # the second run lost its b8 record
    b = [_run(("latency", 1), ("latency", 8), ("offline", 8)), _run(("latency", 1), ("latency", 8))]
    pairs, one_sided = _by_key(a, b)
    assert {key: (len(sa), len(sb)) for key, (sa, sb) in pairs.items()} == \
        {("tvm", "latency b1"): (2, 2), ("tvm", "latency b8"): (1, 2)}
    assert one_sided == []  # offline b8 has no windows here: no series, so nothing to name
    b[0].records[2]["result"] = {"windows": [{"throughput_rps": 10.0}] * 3}
    assert _by_key(a, b)[1] == [("tvm", "offline b8")]


def test_the_machine_moving_is_measured_between_the_sides_not_across_every_run():
    a = [Run(None, [], {"machine_peak": {"peak_gflops": p}}) for p in (100.0, 150.0)]
    b = [Run(None, [], {"machine_peak": {"peak_gflops": p}}) for p in (150.0, 100.0)]
    assert compare.machine_moved(a, b, {("tvm", "latency b1"): None}) == {("tvm", "latency b1"):
                                                                           {"machine's peak moved": 0.0}}
    assert compare.drift(1.0, float("nan")) is None and compare.drift(1.0, None) is None
