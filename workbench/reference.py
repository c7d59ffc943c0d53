"""ONNX Runtime as the reference every compiled engine is checked against."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError


def session(model_path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 0):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # 0: one per physical core
    options.log_severity_level = 3
    available = set(ort.get_available_providers())
    chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(model_path), sess_options=options, providers=chosen)


def run(model_path: Path, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session(model_path).run(None, inputs)


@dataclass(frozen=True)
class Comparison:
    output: str
    max_abs_error: float
    max_rel_error: float
    passed: bool

    def as_dict(self) -> dict:
        return {"output": self.output, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "passed": self.passed}


def check_tolerance(rtol: float, atol: float) -> None:
    if not (rtol >= 0 and atol >= 0):  # also refuses NaN
        raise WorkbenchError(f"--rtol and --atol must be non-negative numbers (got {rtol}, {atol})")


def compare(names: list[str], actual: list[np.ndarray], expected: list[np.ndarray],
            rtol: float, atol: float) -> list[Comparison]:
    """Per output: max errors, and pass when |a - e| <= atol + rtol * |e| everywhere (numpy.allclose)."""
    results = []
    for name, a, e in zip(names, actual, expected, strict=True):
        a64, e64 = np.asarray(a, np.float64), np.asarray(e, np.float64)
        if a64.shape != e64.shape:
            results.append(Comparison(name, float("inf"), float("inf"), False))
            continue
        diff = np.abs(a64 - e64)
        rel = diff / np.maximum(np.abs(e64), np.finfo(np.float32).tiny)
        passed = bool(np.all(diff <= atol + rtol * np.abs(e64)))
        results.append(Comparison(name, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), passed))
    return results
