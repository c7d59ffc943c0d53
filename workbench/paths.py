"""Where a workbench project keeps its files: targets/, models/, tuning_logs/, build/, reports/."""

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def make_directory(path: Path, what: str) -> Path:
    """mkdir -p that answers a path it cannot create (a file in the way, no permission) in one line."""
    from workbench.errors import WorkbenchError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"cannot create the {what} {path}: {exc.strerror}; choose another path") from None
    return path


def source_root() -> Path:
    """The checkout the code runs from: what ships with it (reference tuning records) lives there."""
    return _SOURCE_ROOT


def project_root() -> Path:
    """WORKBENCH_HOME if set, else the current directory when it holds targets/, else the checkout."""
    if env := os.environ.get("WORKBENCH_HOME"):
        return Path(env)
    cwd = Path.cwd()
    if (cwd / "targets").is_dir():
        return cwd
    return _SOURCE_ROOT


def targets_dir() -> Path:
    return project_root() / "targets"


def models_dir() -> Path:
    return project_root() / "models"


def zoo_dir() -> Path:
    """Generated built-in models; not committed (resnet50 alone is ~100 MB)."""
    return models_dir() / "zoo"


def tuning_logs_dir() -> Path:
    return project_root() / "tuning_logs"


def build_dir() -> Path:
    return project_root() / "build"
