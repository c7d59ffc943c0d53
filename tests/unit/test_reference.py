import numpy as np

from workbench.reference import compare


def test_compare_hand_computed():
    expected = [np.array([1.0, -2.0, 0.5], np.float32)]
    actual = [np.array([1.0001, -2.0, 0.5], np.float32)]
    (c,) = compare(["y"], actual, expected, rtol=1e-3, atol=0.0)
    assert c.passed
    assert c.max_abs_error == np.float64(np.float32(1.0001)) - 1.0
    assert abs(c.max_rel_error - 1e-4) < 1e-6
    (c,) = compare(["y"], actual, expected, rtol=1e-5, atol=1e-6)
    assert not c.passed


def test_compare_shape_mismatch_fails():
    (c,) = compare(["y"], [np.zeros((2, 3))], [np.zeros((3, 2))], rtol=1, atol=1)
    assert not c.passed and c.max_abs_error == float("inf")


def test_shape_mismatch_names_both_shapes():
    (c,) = compare(["y"], [np.zeros((2, 3))], [np.zeros((3, 2))], rtol=1, atol=1)
    assert c.reason == "shape [2, 3] where the reference has [3, 2]" and c.summary() == c.reason


NAN, INF = float("nan"), float("inf")


def test_nonfinite_at_the_same_positions_are_equal():
    """As ONNX's test_sqrt / test_log / test_pow expect: NaN where NaN, +inf where +inf, -inf where -inf."""
    expected = np.array([NAN, INF, -INF, 2.0, 0.5], np.float32)
    actual = np.array([NAN, INF, -INF, 2.0 + 1e-7, 0.5], np.float32)
    (c,) = compare(["y"], [actual], [expected], rtol=1e-5, atol=1e-6)
    assert c.passed and c.reason is None and c.nonfinite_equal == 3
    assert np.isfinite(c.max_abs_error) and c.max_abs_error < 1e-6
    assert c.as_dict()["max_abs_error"] == c.max_abs_error and c.as_dict()["nonfinite_equal"] == 3
    # a finite error beside equal NaNs still fails on the figures, which stay finite
    (c,) = compare(["y"], [actual + np.float32(1)], [expected], rtol=1e-5, atol=1e-6)
    assert not c.passed and c.reason is None and 0.99 < c.max_abs_error < 1.01


def test_nonfinite_at_different_positions_fail_named_as_such():
    expected = np.array([[NAN, 1.0, INF, 3.0]], np.float32)
    actual = np.array([[1.0, NAN, -INF, 3.0]], np.float32)
    (c,) = compare(["y"], [actual], [expected], rtol=1, atol=1)
    assert not c.passed
    assert c.reason.startswith("2 position(s) NaN in one output and not the other and 1 position(s) infinite")
    assert "first at index [0, 0]: 1 where the reference has nan" in c.reason
    assert c.max_abs_error == 0.0  # only index 3 is finite in both
    (c,) = compare(["y"], [np.array([INF])], [np.array([5.0])], rtol=1, atol=1)
    assert not c.passed and c.reason.startswith("1 position(s) infinite in one output and not the other")


def test_scalar_outputs():
    (c,) = compare(["y"], [np.float32(NAN)], [np.array(NAN, np.float32)], rtol=0, atol=0)
    assert c.passed
    (c,) = compare(["y"], [np.float32(1)], [np.array(NAN, np.float32)], rtol=0, atol=0)
    assert not c.passed and "index []" in c.reason


def test_a_failed_record_names_its_reason_in_the_report():
    from workbench.report.page import correctness
    from workbench.report.run import Run, errors_of, failure_reason

    (bad,) = compare(["y"], [np.array([1.0, NAN])], [np.array([1.0, 2.0])], rtol=0, atol=0)
    block = {"passed": False, "per_batch": {"1": {"passed": False, "outputs": [bad.as_dict()]}}}
    assert failure_reason(block) == bad.reason and errors_of(block) == (0.0, 0.0)
    assert failure_reason({"per_batch": {"1": {"outputs": [{"max_abs_error": 1.0, "max_rel_error": 1.0}]}}}) is None
    record = {"engine": "tvm", "scenario": {"kind": "latency", "batch": 1}, "correctness": block}
    assert "1 position(s) NaN in one output and not the other" in correctness(Run(None, [record], {}))
