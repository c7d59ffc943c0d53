import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def make_project(root: Path) -> Path:
    """A fresh workbench project directory: the shipped targets, empty models/ and tuning_logs/."""
    shutil.copytree(REPO / "targets", root / "targets")
    (root / "models").mkdir()
    (root / "tuning_logs").mkdir()
    return root


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return make_project(tmp_path)


def workbench_cli(*args: str, home: Path, timeout: float = 600, extra_env: dict | None = None,
                  **kwargs) -> subprocess.CompletedProcess:
    """The installed console script, run as a user runs it."""
    exe = Path(sys.executable).parent / "workbench"
    env = {**os.environ, "WORKBENCH_HOME": str(home), "COLUMNS": "200", **(extra_env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def assert_one_line_error(returncode: int, output: str, *fragments: str) -> None:
    """A bad input ends with a non-zero exit and one 'error:' line naming the problem, no traceback."""
    assert returncode != 0, output
    assert "Traceback" not in output, output
    assert sum(line.startswith("error:") for line in output.splitlines()) == 1, output
    flat = " ".join(output.split())
    for fragment in fragments:
        assert fragment in flat, output


def pytest_collection_modifyitems(config, items):
    from workbench.fingerprint import gpus

    if gpus():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none found by nvidia-smi)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def records_in(directory: Path) -> int:
    path = directory / "database_tuning_record.json"
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0
