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
