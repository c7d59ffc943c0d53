"""The machine fingerprint and provenance every record and manifest carries (DESIGN.md section 2)."""

import hashlib
import os
import platform
import shutil
import subprocess
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


@lru_cache(maxsize=1)
def machine_fingerprint() -> dict:
    info = _cpuinfo()
    return {
        "cpu_model": info.get("model name") or info.get("Hardware") or platform.processor() or "unknown",
        "cpu_flags": sorted(cpu_flags() & set(_RELEVANT_FLAGS)),
        "physical_cores": physical_cores(),
        "logical_cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "gpus": list(gpus()),
    }


def fingerprint_id(fingerprint: dict) -> str:
    """A short stable id for comparing fingerprints at a glance."""
    key = repr((fingerprint["cpu_model"], fingerprint["cpu_flags"], fingerprint["physical_cores"],
                [g["name"] for g in fingerprint["gpus"]]))
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    def _v(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {"workbench": __version__, "python": platform.python_version(), "tvm": _v("apache-tvm"),
            "tvm_ffi": _v("apache-tvm-ffi"), "onnx": _v("onnx"), "onnxruntime": _v("onnxruntime"),
            "numpy": _v("numpy")}


def provenance() -> dict:
    return {"machine": machine_fingerprint(), "fingerprint_id": fingerprint_id(machine_fingerprint()),
            "versions": versions(), "git_commit": git_commit()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
