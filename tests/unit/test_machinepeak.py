"""The roofline's peak is the faster of two BLAS libraries' float32 matmul, and says which."""

from workbench import machinepeak


def test_the_peak_names_the_faster_of_numpy_and_onnxruntime():
    peak = machinepeak.measure(n=256, copy_bytes=1 << 20, repeats=2)
    assert peak["peak_gflops"] > 0 and peak["bandwidth_gbs"] > 0
    assert "the faster of numpy BLAS and ONNX Runtime MLAS" in peak["method"], peak["method"]


def test_onnxruntime_multiplies_like_numpy():
    import numpy as np

    a, b = (np.random.default_rng(seed).standard_normal((64, 64), dtype=np.float32) for seed in (1, 2))
    (product,) = machinepeak._onnxruntime_matmul(64)(a, b)
    np.testing.assert_allclose(product, a @ b, rtol=1e-4, atol=1e-4)
