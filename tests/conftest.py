"""Fixtures and hooks; the shared helpers themselves are in tests/helpers.py."""

from pathlib import Path

import pytest

from tests.helpers import make_project


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return make_project(tmp_path)


def pytest_collection_modifyitems(config, items):
    from workbench.fingerprint import gpus

    if gpus():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none found by nvidia-smi)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
