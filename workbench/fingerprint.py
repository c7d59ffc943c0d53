"""The machine fingerprint and provenance every record and manifest carries (DESIGN.md section 2)."""

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from workbench import __version__

# The ISA extensions that decide which code a CPU can run and how fast it is.
_RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                   "avx512_bf16", "amx_tile", "neon", "asimd", "sve")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:
            info[key.strip()] = value.strip()
    return info


def cpu_flags() -> set[str]:
    info = _cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@lru_cache(maxsize=1)
def gpus() -> tuple[dict[str, str], ...]:
    """NVIDIA GPUs seen by nvidia-smi: name, driver, compute capability. Empty without one."""
    if not shutil.which("nvidia-smi"):
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return ()
    rows = [[f.strip() for f in line.split(",")] for line in out.strip().splitlines() if line.strip()]
    return tuple({"name": r[0], "driver": r[1], "compute_cap": r[2]} for r in rows if len(r) == 3)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent, check=True).stdout.strip() or None
    except (subprocess.SubprocessError, OSError):
        return None


# The /proc/cpuinfo fields that name the silicon: the marketing name does not ("AMD EPYC" is every
# generation from Zen 2 to Zen 5). x86 first, then ARM.
_CPU_ID_FIELDS = {"vendor_id": "vendor", "cpu family": "family", "model": "model", "stepping": "stepping",
                  "CPU implementer": "implementer", "CPU part": "part", "CPU variant": "variant",
                  "CPU revision": "revision"}

# 1: marketing name, flags, cores and GPUs only (records and tuning sessions written before kind 2);
# 2: adds the CPU's family/model/stepping (cpu_id) and, where TVM was loaded, LLVM's name for the CPU.
FINGERPRINT_KIND = 2
OLDER_KIND_NOTE = ("the older kind, recorded before workbench kept the CPU's family and model, which cannot "
                   "tell apart CPU generations that share a name")


@lru_cache(maxsize=1)
def _machine() -> dict:
    info = _cpuinfo()
    return {
        "cpu_model": info.get("model name") or info.get("Hardware") or platform.processor() or "unknown",
        "cpu_id": {name: info[field] for field, name in _CPU_ID_FIELDS.items() if field in info},
        "cpu_flags": sorted(cpu_flags() & set(_RELEVANT_FLAGS)),
        "physical_cores": physical_cores(),
        "logical_cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "gpus": list(gpus()),
    }


def llvm_cpu() -> str | None:
    """LLVM's name for this CPU (what TVM compiles for), known only once TVM is loaded: importing TVM
    takes seconds, and bench, report and targets must not pay that for a fingerprint."""
    if "tvm" not in sys.modules:
        return None
    try:
        from workbench.compiler.hostinfo import llvm_host_cpu

        return llvm_host_cpu()
    except Exception:  # a TVM import still under way or broken: the name is optional
        return None


def machine_fingerprint() -> dict:
    return {**_machine(), "llvm_cpu": llvm_cpu()}


def fingerprint_id(fingerprint: dict) -> str:
    """A short stable id for comparing fingerprints at a glance. LLVM's CPU name is left out: it is
    known only where TVM was loaded, and the same machine must get the same id either way (on x86
    LLVM derives it from the family and model, which are in)."""
    if "cpu_id" not in fingerprint:  # an older-kind fingerprint: its id as it was made then
        return older_fingerprint_id(fingerprint)
    key = repr((fingerprint["cpu_model"], sorted(fingerprint["cpu_id"].items()), fingerprint["cpu_flags"],
                fingerprint["physical_cores"], [g["name"] for g in fingerprint["gpus"]]))
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def older_fingerprint_id(fingerprint: dict) -> str:
    """The id of fingerprint kind 1, which every fingerprint still holds the parts of."""
    key = repr((fingerprint["cpu_model"], fingerprint["cpu_flags"], fingerprint["physical_cores"],
                [g["name"] for g in fingerprint["gpus"]]))
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def fingerprint_kind(provenance: dict) -> int:
    kind = provenance.get("fingerprint_kind")
    return kind if isinstance(kind, int) else 1


def _older_id(provenance: dict) -> str | None:
    if fingerprint_kind(provenance) < 2:
        return provenance.get("fingerprint_id")
    try:
        return older_fingerprint_id(provenance["machine"])
    except (KeyError, TypeError):  # a hand-edited block: nothing to match on
        return None


def same_machine(a: dict, b: dict) -> tuple[bool, bool]:
    """Whether two provenance blocks (bench records, tuning sessions) come from the same machine, and
    whether that could be judged only by the older kind of fingerprint (one of them is kind 1): then
    "same" means the same CPU name, flags, cores and GPUs, maybe of another CPU generation."""
    if fingerprint_kind(a) >= 2 and fingerprint_kind(b) >= 2:
        return a.get("fingerprint_id") == b.get("fingerprint_id"), False
    older_a, older_b = _older_id(a), _older_id(b)
    return older_a is not None and older_a == older_b, True


def describe_cpu(machine: dict) -> str:
    """The CPU as a person tells two apart: "AMD EPYC (family 26, model 2, stepping 1; LLVM znver5)"."""
    cpu_id = machine.get("cpu_id")
    parts = ", ".join(f"{k} {v}" for k, v in cpu_id.items() if k != "vendor") if isinstance(cpu_id, dict) else ""
    llvm = f"LLVM {machine['llvm_cpu']}" if machine.get("llvm_cpu") else ""
    detail = "; ".join(p for p in (parts, llvm) if p)
    return f"{machine.get('cpu_model', '?')}{f' ({detail})' if detail else ''}"


def here() -> dict:
    """This machine as a provenance block holds it, for comparing with recorded ones."""
    machine = machine_fingerprint()
    return {"machine": machine, "fingerprint_id": fingerprint_id(machine), "fingerprint_kind": FINGERPRINT_KIND}


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    def _v(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {"workbench": __version__, "python": platform.python_version(), "tvm": _v("apache-tvm"),
            "tvm_ffi": _v("apache-tvm-ffi"), "onnx": _v("onnx"), "onnxruntime": _v("onnxruntime"),
            "openvino": _v("openvino"), "numpy": _v("numpy")}


def provenance() -> dict:
    return {**here(), "versions": versions(), "git_commit": git_commit()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
