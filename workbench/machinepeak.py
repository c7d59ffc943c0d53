"""The machine's measured float32 peak and memory bandwidth: the roofline engines are judged against.

Measured, not looked up: a large float32 matmul (numpy's BLAS, all cores) and a large array copy,
best of a few repeats so a noisy neighbour lowers the odds of an understated peak.
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
    matmul_s = _best_seconds(lambda: np.matmul(a, b, out=out), repeats)
    src = np.ones(copy_bytes // 4, np.float32)
    dst = np.empty_like(src)
    copy_s = _best_seconds(lambda: np.copyto(dst, src), repeats)
    return {"peak_gflops": 2 * n ** 3 / matmul_s / 1e9, "bandwidth_gbs": 2 * copy_bytes / copy_s / 1e9,
            "method": f"float32 matmul {n}x{n} (numpy BLAS) and a {copy_bytes >> 20} MiB copy (read + write), "
                      f"best of {repeats}"}
