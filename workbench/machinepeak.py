"""The machine's measured float32 peak and memory bandwidth: the roofline engines are judged against.

Measured, not looked up: a large float32 matmul (all cores) and a large array copy, best of a few
repeats so a noisy neighbour lowers the odds of an understated peak. The matmul is timed in numpy's
BLAS and in ONNX Runtime's, and the faster counts: a BLAS that does not know the CPU runs narrower
kernels (numpy's OpenBLAS took AVX2 on an AVX-512 Zen 5: 218 GFLOP/s against MLAS's 303, so a
runtime's model figures read above "the peak").
"""

import time

import numpy as np

MATMUL_N = 2048
COPY_BYTES = 256 << 20
REPEATS = 5


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: page faults, thread pool start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(n: int = MATMUL_N, copy_bytes: int = COPY_BYTES, repeats: int = REPEATS) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    blas = {"numpy BLAS": _best_seconds(lambda: np.matmul(a, b, out=out), repeats)}
    ort_matmul = _onnxruntime_matmul(n)
    if ort_matmul is not None:
        blas["ONNX Runtime MLAS"] = _best_seconds(lambda: ort_matmul(a, b), repeats)
    fastest = min(blas, key=blas.get)
    matmul_s = blas[fastest]
    src = np.ones(copy_bytes // 4, np.float32)
    dst = np.empty_like(src)
    copy_s = _best_seconds(lambda: np.copyto(dst, src), repeats)
    faster = f"{fastest}, the faster of {' and '.join(blas)}"
    return {"peak_gflops": 2 * n ** 3 / matmul_s / 1e9, "bandwidth_gbs": 2 * copy_bytes / copy_s / 1e9,
            "method": f"float32 matmul {n}x{n} ({faster}) and a {copy_bytes >> 20} MiB copy (read + write), "
                      f"best of {repeats}"}


def _onnxruntime_matmul(n: int):
    """A run(a, b) of one n x n MatMul in ONNX Runtime on every physical core, None without it."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    from workbench.fingerprint import physical_cores

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda a, b: session.run(None, {"a": a, "b": b})
