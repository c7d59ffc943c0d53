"""Pure pieces of the report: the cumulative tuning curve and the comparison's statistics."""

import numpy as np

from workbench.report.compare import classify, ratio_interval
from workbench.report.run import Run, errors_of
from workbench.report.tuning import cumulative_curves, measured_p50, time_to_parity


def test_cumulative_curves_add_sessions_end_to_end_one_curve_per_estimated_batch():
    sessions = [{"seconds": 60, "trials": 10, "batch_sizes": [1, 8], "curve": [[0, 0, None], [60, 10, 0.004]]},
                {"seconds": 120, "trials": 20, "batch_sizes": [1], "curve": [[30, 5, 0.003], [120, 20, 0.002]]},
                {"seconds": 60, "trials": 6, "batch_sizes": [8], "curve": [[60, 6, 0.03]]}]
    assert cumulative_curves(sessions) == {1: [(1.0, 10, 4.0), (1.5, 15, 3.0), (3.0, 30, 2.0)],
                                           8: [(4.0, 36, 30.0)]}  # a batch-8 session's estimate is batch 8's


def test_time_to_parity_is_the_first_point_at_or_below_the_reference():
    points = [(1.0, 10, 4.0), (1.5, 15, 3.0), (2.0, 20, 3.5), (3.0, 30, 2.0)]
    assert time_to_parity(points, 3.0) == (1.5, 15)  # at the reference counts
    assert time_to_parity(points, 2.5) == (3.0, 30)
    assert time_to_parity(points, 1.0) is None and time_to_parity([], 5.0) is None


def test_ratio_interval_finds_a_doubling_and_classify_reads_it():
    rng = np.random.default_rng(1)
    a = rng.normal(10, 0.5, 400)
    ratio, low, high = ratio_interval(a, 2 * a)
    assert 1.95 < low <= ratio <= high < 2.05
    assert classify(low, high, lower_is_better=True) == "regression"  # latency doubled
    assert classify(low, high, lower_is_better=False) == "improvement"  # throughput doubled
    ratio, low, high = ratio_interval(a, a.copy())
    assert low < 1 < high and classify(low, high, True) == "no significant change"


def test_errors_of_finds_the_worst_anywhere():
    correctness = {"per_batch": {"1": {"outputs": [{"max_abs_error": 1e-6, "max_rel_error": 1e-4}]},
                                 "8": {"outputs": [{"max_abs_error": 3e-6, "max_rel_error": 2e-5}]}}}
    assert errors_of(correctness) == (3e-6, 1e-4)
    assert errors_of({"passed": True}) is None


def _timed(engine, kind, batch, p50):
    return {"engine": engine, "status": "ok", "scenario": {"kind": kind, "batch": batch},
            "result": {"latency_ms": {"p50_ms": p50}}}


def test_measured_p50_prefers_the_paired_blocks_to_the_latency_phase():
    records = [_timed("tvm", "latency", 1, 4.9), _timed("tvm", "latency", 8, 40.0),
               _timed("tvm", "paired", 8, 53.0), _timed("onnxruntime", "latency", 1, 7.8)]
    assert measured_p50(Run(None, records, {}), "tvm", 1) == 4.9  # no paired batch-1 record: the latency phase
    assert measured_p50(Run(None, records, {}), "tvm", 8) == 53.0
    records.append(_timed("tvm", "paired", 1, 8.4))
    assert measured_p50(Run(None, records, {}), "tvm", 1) == 8.4
    assert measured_p50(Run(None, records, {}), "onnxruntime", 1) == 7.8
    assert measured_p50(Run(None, records, {}), "null", 1) is None


def test_the_tuning_section_names_where_the_builds_schedules_came_from():
    from workbench.report.tuning import tuning

    shares = {"reference": {"kernels": 20, "flops_share": 0.9}, "local": {"kernels": 1, "flops_share": 0.04},
              "default": {"kernels": 5, "flops_share": 0.06}}
    build = {"schedules": shares, "reference": {"family": "x86-64-avx512", "machines": ["AMD EPYC (LLVM znver5)"]}}
    page = tuning(Run(None, [], {"tuning": {"database": "tuning_logs/host", "sessions": [], "build": build}}))
    assert "No tuning sessions" in page and "default schedules" in page
    assert ('id="schedule-sources">Schedules: 20 of 26 kernels (90% of the FLOPs) from reference records '
            "x86-64-avx512 (tuned on AMD EPYC (LLVM znver5)); 1 (4%) from local tuning; 5 (6%)") in page
    # A run from before builds named their sources: the section says nothing about them.
    assert "schedule-sources" not in tuning(Run(None, [], {"tuning": {"database": "x", "sessions": []}}))

