"""Every engine bench can measure, by name: what computes it, whether it is served, whether it
needs a build, and its label. Adding an engine is one entry here plus one adapter module under
engines/ whose `open(...)` returns an Engine (served engines reuse the in-process adapters)."""

import importlib
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

TVM, ONNXRUNTIME, OPENVINO, NULL = "tvm", "onnxruntime", "openvino", "null"
FLASK_NAIVE = "flask-naive"
SERVER_TVM, SERVER_ONNXRUNTIME, SERVER_NULL = "server-tvm", "server-onnxruntime", "server-null"
SERVER_OPENVINO = "server-openvino"
REMOTE = "remote"  # the records of a server at --url: not an entry, bench only drives it
REFERENCE = ONNXRUNTIME  # every engine's outputs are checked against it; paired ratios are over it


@dataclass(frozen=True)
class EngineInfo:
    name: str
    label: str
    runtime: str  # the in-process engine that computes; flask-naive runs ONNX Runtime its own way
    served: bool = False  # a server process on 127.0.0.1 driven over HTTP, else called in-process
    adapter: str | None = None  # the module whose open(...) builds the in-process engine

    @property
    def needs_build(self) -> bool:
        return self.runtime == TVM

    @property
    def computes_model(self) -> bool:
        """False for the null engines: zeros at once, the harness's own cost; nothing to check."""
        return self.runtime != NULL


_ENTRIES = (
    EngineInfo(TVM, "TVM, in-process", TVM, adapter="workbench.engines.tvm_engine"),
    EngineInfo(ONNXRUNTIME, "ONNX Runtime, in-process", ONNXRUNTIME, adapter="workbench.engines.onnxruntime_engine"),
    EngineInfo(OPENVINO, "OpenVINO, in-process", OPENVINO, adapter="workbench.engines.openvino_engine"),
    EngineInfo(NULL, "zeros at once: the harness's own cost", NULL, adapter="workbench.engines.null_engine"),
    EngineInfo(FLASK_NAIVE, "Flask, one request one call", ONNXRUNTIME, served=True),
    EngineInfo(SERVER_TVM, "workbench-server, TVM", TVM, served=True),
    EngineInfo(SERVER_ONNXRUNTIME, "workbench-server, ONNX Runtime", ONNXRUNTIME, served=True),
    EngineInfo(SERVER_OPENVINO, "workbench-server, OpenVINO", OPENVINO, served=True),
    EngineInfo(SERVER_NULL, "workbench-server, null engine", NULL, served=True),
)
ENGINES: dict[str, EngineInfo] = {e.name: e for e in _ENTRIES}
NAMES = tuple(ENGINES)
DIRECT = tuple(e.name for e in _ENTRIES if not e.served)


def described() -> str:
    """Every engine with its label, for help texts: "tvm (TVM, in-process), ..."."""
    return ", ".join(f"{e.name} ({e.label})" for e in _ENTRIES)


def get(name: str) -> EngineInfo:
    if name not in ENGINES:
        raise WorkbenchError(f"unknown engine '{name}'; choose from: {', '.join(NAMES)}")
    return ENGINES[name]


def is_null(name: str) -> bool:
    """A null engine's figures are the harness's own cost; any other name (an external server too)
    computes the model."""
    return name in ENGINES and not ENGINES[name].computes_model


def open_engine(runtime: str, *, model_path: Path, build_dir: Path | None, outputs: list[dict],
                providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 0):
    """The in-process engine `runtime` (tvm, onnxruntime, openvino, null), through its adapter;
    `threads`: see check_threads (0: the engine's own choice, one per physical core)."""
    info = ENGINES.get(runtime)
    if info is None or info.adapter is None:
        raise WorkbenchError(f"unknown engine '{runtime}'; choose one of: {', '.join(DIRECT)}")
    check_threads(threads)
    return importlib.import_module(info.adapter).open(model_path=model_path, build_dir=build_dir, outputs=outputs,
                                                      providers=providers, threads=threads)


def check_threads(threads: int) -> None:
    """An engine's threads (--engine-threads): ONNX Runtime's intra-op threads, OpenVINO's inference
    threads, TVM's thread pool (the process's: TVM_NUM_THREADS). 0 leaves each its default, one per
    physical core; a model whose batch computes in microseconds serves for less CPU on one
    (docs/BENCHMARKS.md, #33)."""
    if threads < 0:
        raise WorkbenchError(f"--engine-threads must be 0 (one per physical core) or a thread count, got {threads}")
