"""The correctness gate's tolerance: |a - e| <= atol + rtol * |e| (numpy.allclose), the same
default for compile, bench, export and the bundle's verify."""

from workbench.errors import WorkbenchError

DEFAULT_RTOL, DEFAULT_ATOL = 1e-4, 1e-5


def check_tolerance(rtol: float, atol: float) -> None:
    if not (rtol >= 0 and atol >= 0):  # also refuses NaN
        raise WorkbenchError(f"--rtol and --atol must be non-negative numbers (got {rtol}, {atol})")
