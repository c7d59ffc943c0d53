"""Pure rules of bundles: which machine can run one, how --models is read, what gets pinned."""

import platform

import pytest

from workbench import fingerprint
from workbench.bundle.archive import runs_here
from workbench.bundle.export import pinned_requirements, serving_distributions
from workbench.bundle.serve import parse_models
from workbench.errors import WorkbenchError


def _needs(**kw) -> dict:
    return {"requires": {"machine": platform.machine(), "device": "cpu", "cpu_flags": [], "gpu_arch": None, **kw}}


def test_runs_here_checks_architecture_cpu_flags_and_gpu():
    assert runs_here(_needs()) == (True, "")
    assert runs_here(_needs(cpu_flags=sorted(fingerprint.cpu_flags())[:3]))[0]
    ok, why = runs_here(_needs(cpu_flags=["not_a_real_flag"]))
    assert not ok and "not_a_real_flag" in why
    ok, why = runs_here(_needs(machine="riscv128"))
    assert not ok and "riscv128" in why
    if not fingerprint.gpus():
        ok, why = runs_here(_needs(device="cuda", gpu_arch="sm_90"))
        assert not ok and "sm_90" in why


def test_parse_models_reads_pairs_and_refuses_bad_ones():
    assert [(n, str(p)) for n, p in parse_models(" a=x.tar.gz , b=dir/y ")] == [("a", "x.tar.gz"), ("b", "dir/y")]
    for text in ("", "a", "=x", "a=", "a=x,a=y"):
        with pytest.raises(WorkbenchError):
            parse_models(text)


def test_pinned_requirements_pin_the_stack_and_what_it_needs():
    pins = dict(line.split("==") for line in pinned_requirements())
    assert pins["apache-tvm-ffi"] == "0.1.14.post1"
    assert {"apache-tvm", "onnxruntime", "numpy", "uvicorn", "typing-extensions", "protobuf"} <= set(pins)
    assert "pandas" not in pins and "flask" not in pins  # serving needs neither


def test_openvino_is_pinned_only_for_a_bundle_to_be_served_with_it():
    from importlib.metadata import version

    assert "openvino" not in dict(line.split("==") for line in pinned_requirements(serving_distributions("tvm")))
    pins = dict(line.split("==") for line in pinned_requirements(serving_distributions("openvino")))
    assert pins["openvino"] == version("openvino") and "openvino-telemetry" in pins  # with what it needs
