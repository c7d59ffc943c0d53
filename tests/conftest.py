"""Fixtures and hooks; the shared helpers themselves are in tests/helpers.py."""

from pathlib import Path

import pytest

from tests.helpers import make_project, model_config, start_server


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return make_project(tmp_path)


@pytest.fixture(scope="module")
def mlp_server(tmp_path_factory):
    """mlp on ONNX Runtime behind a workbench server, one per test module."""
    server = start_server(tmp_path_factory.mktemp("mlp"), model_config("mlp", max_batch=8, max_queue_rows=64),
                          max_body_bytes=200_000)
    yield server
    server.stop()


def pytest_collection_modifyitems(config, items):
    from workbench.fingerprint import gpus

    if gpus():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none found by nvidia-smi)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
