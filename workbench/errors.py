"""Errors a user can act on. The CLI prints the message as one line and exits non-zero."""


def first_line(exc: Exception) -> str:
    """TVM and ONNX errors carry long traces; the first line is the message."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class WorkbenchError(Exception):
    """A problem with the user's input or environment; the message says how to fix it."""

    exit_code = 1


class TargetError(WorkbenchError):
    """An unknown or malformed target profile."""


class ModelError(WorkbenchError):
    """A missing, malformed or unsupported model."""


class DatabaseError(WorkbenchError):
    """A tuning database that cannot be used as it is."""


class CorrectnessError(WorkbenchError):
    """A compiled model whose outputs differ from ONNX Runtime's beyond tolerance."""
