"""ONNX Runtime as the reference every compiled engine is checked against."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError, first_line


class OnnxRuntimeError(WorkbenchError):
    """ONNX Runtime cannot load or run the model, so nothing can be checked against it."""


def _refused(model_path: Path, doing: str, exc: Exception) -> OnnxRuntimeError:
    return OnnxRuntimeError(f"ONNX Runtime cannot {doing} {Path(model_path).name}: {first_line(exc)}; every engine "
                            "is checked against ONNX Runtime, so the model must use only operators, data types "
                            "and opsets it supports: change the model, or upgrade onnxruntime")


def session(model_path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 0,
            stop_spinning: bool = False):
    """A session with all graph optimisations. `stop_spinning`: the intra-op threads still spin while a
    call runs (ORT's default) but stop when it returns, instead of spinning on into whatever runs next
    in this process (docs/BENCHMARKS.md, "How the paired ratio is protected")."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads  # 0: one per physical core
    options.log_severity_level = 3
    if stop_spinning:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    available = set(ort.get_available_providers())
    chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=chosen)
    except Exception as exc:  # ORT raises its own pybind types (NotImplemented, Fail, InvalidGraph, ...)
        raise _refused(model_path, "load", exc) from None


def run(model_path: Path, inputs: dict[str, np.ndarray], reference_session=None) -> list[np.ndarray]:
    """ONNX Runtime's outputs; pass a session from `session(model_path)` to reuse it."""
    reference_session = reference_session or session(model_path)
    try:
        return reference_session.run(None, inputs)
    except Exception as exc:
        raise _refused(model_path, "run", exc) from None


@dataclass(frozen=True)
class Comparison:
    output: str
    max_abs_error: float  # over the positions finite in both outputs
    max_rel_error: float
    passed: bool
    reason: str | None = None  # why it failed where the error figures would mislead (shapes, NaN, inf)
    nonfinite_equal: int = 0  # positions NaN or the same infinity in both: equal, left out of the figures

    def as_dict(self) -> dict:
        return {"output": self.output, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "passed": self.passed, "reason": self.reason,
                "nonfinite_equal": self.nonfinite_equal}

    def summary(self) -> str:
        return self.reason or f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}"


def _nonfinite_reason(a: np.ndarray, e: np.ndarray, differ: np.ndarray) -> str:
    nan = int((np.isnan(a) != np.isnan(e)).sum())
    parts = [f"{nan} position(s) NaN in one output and not the other"] if nan else []
    if int(differ.sum()) > nan:
        parts.append(f"{int(differ.sum()) - nan} position(s) infinite in one output and not the other "
                     "(or of opposite sign)")
    first = tuple(int(i) for i in np.argwhere(differ)[0])
    return f"{' and '.join(parts)}; first at index {list(first)}: {a[first]:g} where the reference has {e[first]:g}"


def compare(names: list[str], actual: list[np.ndarray], expected: list[np.ndarray],
            rtol: float, atol: float) -> list[Comparison]:
    """Per output: max errors, and pass when |a - e| <= atol + rtol * |e| everywhere (numpy.allclose).
    NaN where the reference has NaN, and the same infinity where it has one, are equal (as in
    numpy.testing.assert_allclose): ONNX's own tests (Sqrt, Log, Pow) expect them."""
    results = []
    for name, a, e in zip(names, actual, expected, strict=True):
        a64, e64 = np.asarray(a, np.float64), np.asarray(e, np.float64)
        if a64.shape != e64.shape:
            results.append(Comparison(name, float("inf"), float("inf"), False,
                                      f"shape {list(a64.shape)} where the reference has {list(e64.shape)}"))
            continue
        finite = np.isfinite(a64) & np.isfinite(e64)
        with np.errstate(invalid="ignore"):  # inf == inf compares fine; NaN is handled by isnan
            alike = ~finite & ((np.isnan(a64) & np.isnan(e64)) | (a64 == e64))
        differ = ~finite & ~alike
        a_f, e_f = a64[finite], e64[finite]
        diff = np.abs(a_f - e_f)
        rel = diff / np.maximum(np.abs(e_f), np.finfo(np.float32).tiny)
        passed = not differ.any() and bool(np.all(diff <= atol + rtol * np.abs(e_f)))
        reason = _nonfinite_reason(a64, e64, differ) if differ.any() else None
        results.append(Comparison(name, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), passed,
                                  reason, int(alike.sum())))
    return results
