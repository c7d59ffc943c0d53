"""Register only the tensor intrinsics a target can use.

`import tvm.s_tir.tensor_intrin` registers every intrinsic TVM ships (CUDA, ROCm, Hexagon, Arm,
x86); the CUDA ones take most of the tens of seconds it costs on a small machine
(docs/BENCHMARKS.md, "Tuning throughput"), and MetaSchedule pays it in the tuning process and
again in every build worker. A CPU target can only tensorize with the x86 and Arm intrinsics, so
for it we load the package's __path__ without its __init__ and import just those two modules.
GPU targets get the full import.
"""

import importlib.util
import sys
import types

_PACKAGE = "tvm.s_tir.tensor_intrin"
_GPU_MODULES = ("cuda", "rocm")
_CPU_MODULES = ("x86", "arm_cpu")


def register_tensor_intrinsics(target_kind: str) -> None:
    package = sys.modules.get(_PACKAGE)
    if package is not None and getattr(package, "_workbench_cpu_only", False):
        if target_kind != "llvm":  # a CPU run came first in this process: add what a GPU needs
            for module in _GPU_MODULES:
                importlib.import_module(f"{_PACKAGE}.{module}")
        return
    if target_kind != "llvm" or package is not None:
        import tvm.s_tir.tensor_intrin  # noqa: F401

        return
    import tvm.s_tir  # noqa: F401  (the parent package must exist first)

    spec = importlib.util.find_spec(_PACKAGE)
    package = types.ModuleType(_PACKAGE)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__package__ = _PACKAGE
    package._workbench_cpu_only = True
    sys.modules[_PACKAGE] = package
    for module in _CPU_MODULES:
        importlib.import_module(f"{_PACKAGE}.{module}")
