"""Target profiles: one TOML file per hardware target under targets/.

A profile names a TVM target as a JSON dict. The value "auto" in the target or host dict is
filled in at run time: `mcpu` from LLVM's view of this CPU, `num-cores` from the physical core
count, `arch` from the GPU's compute capability.
"""

import copy
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workbench import fingerprint
from workbench.errors import TargetError, WorkbenchError
from workbench.paths import targets_dir

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class RpcConfig:
    tracker_host: str
    tracker_port: int
    key: str


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    device: str
    target: dict
    host: dict | None
    onnxruntime_providers: tuple[str, ...]
    total_trials: int
    trials_per_task: int
    batch_sizes: tuple[int, ...]
    path: Path
    requires_cpu_flags: tuple[str, ...] = ()
    gpu_fallback_arch: str | None = None
    cross_compiler: str | None = None
    rpc: RpcConfig | None = None
    # Time candidates with their weights flushed from the CPU caches, as a model whose weights
    # outgrow the caches meets them (compiler/measure.py); CPU profiles only.
    cold_weights: bool = False
    _resolved: dict = field(default_factory=dict, compare=False, repr=False)

    def resolved_target(self) -> dict:
        """The TVM target dict with every "auto" value detected; the host dict nested as "host"."""
        if "target" not in self._resolved:
            target = _fill_auto(self.target, self)
            if self.host is not None:
                target["host"] = _fill_auto(self.host, self)
            self._resolved["target"] = target
        return copy.deepcopy(self._resolved["target"])

    def runs_here(self) -> tuple[bool, str]:
        """Whether this machine can run code built for the profile, and why not."""
        if self.rpc is not None or self.cross_compiler:
            return False, "remote device (over RPC)"
        if self.device == "cuda":
            return (True, "") if fingerprint.gpus() else (False, "no NVIDIA GPU on this machine")
        missing = [f for f in self.requires_cpu_flags if f not in fingerprint.cpu_flags()]
        return (False, f"CPU lacks {', '.join(missing)}") if missing else (True, "")


def _fill_auto(spec: dict, profile: "TargetProfile") -> dict:
    filled = copy.deepcopy(spec)
    for key, value in spec.items():
        if value != "auto":
            continue
        if key == "mcpu":
            from workbench.compiler.hostinfo import llvm_host_cpu

            filled[key] = llvm_host_cpu()
        elif key == "num-cores":
            filled[key] = fingerprint.physical_cores()
        elif key == "arch":
            gpus = fingerprint.gpus()
            if gpus:
                filled[key] = "sm_" + gpus[0]["compute_cap"].replace(".", "")
            elif profile.gpu_fallback_arch:
                filled[key] = profile.gpu_fallback_arch
            else:
                raise TargetError(f"{profile.path}: no GPU found to detect 'arch'; set gpu_fallback_arch "
                                  "or name the arch (e.g. \"sm_90\")")
        else:
            raise TargetError(f"{profile.path}: field 'target.{key}' cannot be \"auto\" "
                              "(only mcpu, num-cores and arch are detected)")
    return filled


class _Fields:
    """Typed reads from a parsed TOML dict, each failure naming the file and the field."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data

    def fail(self, name: str, expected: str, got=None) -> TargetError:
        shown = "" if got is None else f" (got {got!r})"
        return TargetError(f"{self.path}: field '{name}' must be {expected}{shown}; fix the profile")

    def get(self, name: str, kind: type, expected: str, default=...):
        node = self.data
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.get(part, {})
            if not isinstance(node, dict):
                raise self.fail(part, "a table", node)
        if leaf not in node:
            if default is ...:
                raise self.fail(name, expected + " and is missing")
            return default
        value = node[leaf]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(name, expected, value)
        return value

    def positive_int(self, name: str, default=...) -> int:
        value = self.get(name, int, "a positive integer", default)
        if value is not None and value <= 0:
            raise self.fail(name, "a positive integer", value)
        return value

    def str_list(self, name: str, default=...) -> tuple[str, ...]:
        value = self.get(name, list, "a list of strings", default)
        if not all(isinstance(v, str) for v in value):
            raise self.fail(name, "a list of strings", value)
        return tuple(value)


def load_profile(path: Path) -> TargetProfile:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    except UnicodeDecodeError:
        raise TargetError(f"{path}: not UTF-8 text; save the profile as UTF-8") from None
    except OSError as exc:
        raise TargetError(f"{path}: cannot read ({exc.strerror})") from None
    f = _Fields(path, data)
    device = f.get("device", str, f"one of {', '.join(DEVICES)}")
    if device not in DEVICES:
        raise f.fail("device", f"one of {', '.join(DEVICES)}", device)
    target = f.get("target", dict, "a table (the TVM target as a JSON dict)")
    if not isinstance(target.get("kind"), str):
        raise f.fail("target.kind", "a string such as \"llvm\" or \"cuda\"", target.get("kind"))
    host = f.get("host", dict, "a table (the TVM host target)", None)
    batch_sizes = f.get("batch_sizes", list, "a list of positive integers", [1])
    if not batch_sizes or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in batch_sizes):
        raise f.fail("batch_sizes", "a non-empty list of positive integers", batch_sizes)
    cold_weights = f.get("tuning.cold_weights", bool, "true or false", device == "cpu")
    if cold_weights and device != "cpu":
        raise f.fail("tuning.cold_weights", "false on a GPU profile (it flushes CPU caches)", cold_weights)
    rpc = None
    if "rpc" in data:
        rpc = RpcConfig(tracker_host=f.get("rpc.tracker_host", str, "a host name"),
                        tracker_port=f.positive_int("rpc.tracker_port"),
                        key=f.get("rpc.key", str, "a device key"))
    return TargetProfile(
        name=f.get("name", str, "a string"),
        description=f.get("description", str, "a string"),
        device=device,
        target=target,
        host=host,
        onnxruntime_providers=f.str_list("onnxruntime.providers", ("CPUExecutionProvider",)),
        total_trials=f.positive_int("tuning.total_trials"),
        trials_per_task=f.positive_int("tuning.trials_per_task"),
        batch_sizes=tuple(batch_sizes),
        path=path,
        requires_cpu_flags=f.str_list("requires_cpu_flags", ()),
        gpu_fallback_arch=f.get("gpu_fallback_arch", str, "a CUDA arch such as \"sm_90\"", None),
        cross_compiler=f.get("cross_compiler", str, "a compiler command", None),
        rpc=rpc,
        cold_weights=cold_weights,
    )


def profile_paths(directory: Path | None = None) -> dict[str, Path]:
    directory = directory or targets_dir()
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


def get_profile(name: str, directory: Path | None = None) -> TargetProfile:
    paths = profile_paths(directory)
    if name not in paths:
        known = ", ".join(paths) or "none"
        raise TargetError(f"unknown target '{name}'; available: {known} "
                          f"(profiles live in {directory or targets_dir()})")
    profile = load_profile(paths[name])
    if profile.name != name:
        raise TargetError(f"{paths[name]}: field 'name' is {profile.name!r} but the file is {name}.toml; "
                          "make them match")
    return profile


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WorkbenchError(f"--rpc takes the tracker as host:port, e.g. 127.0.0.1:9190 (got {text!r})")
    return host, int(port)


def profile_with_rpc(profile, rpc: str | None, rpc_key: str | None):
    """The profile measured through a tracker: --rpc/--rpc-key override the profile's [rpc]."""
    if rpc is None and rpc_key is None:
        return profile
    if rpc is None and profile.rpc is None:
        raise WorkbenchError("--rpc-key needs --rpc host:port (or an [rpc] section in the profile)")
    host, port = parse_tracker(rpc) if rpc else (profile.rpc.tracker_host, profile.rpc.tracker_port)
    key = rpc_key or (profile.rpc.key if profile.rpc else None)
    if not key:
        raise WorkbenchError("--rpc needs --rpc-key, the key the devices registered under (e.g. cpu-local)")
    return dataclasses.replace(profile, rpc=RpcConfig(host, port, key))
