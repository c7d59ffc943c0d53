"""Register only the tensor intrinsics a target can use.

`import tvm.s_tir.tensor_intrin` registers every intrinsic TVM ships (CUDA, ROCm, Hexagon, Arm,
x86); the CUDA ones alone take ~17 s of the ~26 s it costs on the 2-core reference machine, and
MetaSchedule pays it in the tuning process and again in every build worker. A CPU target can only
tensorize with the x86 and Arm intrinsics, so for it we load the package's __path__ without its
__init__ and import just those two modules. GPU targets get the full import.
"""

import importlib.util
import sys
import types

_PACKAGE = "tvm.s_tir.tensor_intrin"


def register_tensor_intrinsics(target_kind: str) -> None:
    if target_kind != "llvm" or _PACKAGE in sys.modules:
        import tvm.s_tir.tensor_intrin  # noqa: F401

        return
    import tvm.s_tir  # noqa: F401  (the parent package must exist first)

    spec = importlib.util.find_spec(_PACKAGE)
    package = types.ModuleType(_PACKAGE)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__package__ = _PACKAGE
    sys.modules[_PACKAGE] = package
    importlib.import_module(f"{_PACKAGE}.x86")
    importlib.import_module(f"{_PACKAGE}.arm_cpu")
