"""What LLVM (inside TVM) sees of this CPU."""

from functools import lru_cache


@lru_cache(maxsize=1)
def llvm_host_cpu() -> str:
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())
