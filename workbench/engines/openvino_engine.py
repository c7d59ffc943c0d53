"""OpenVINO as a CPU user would run it: the ONNX file read directly, the LATENCY hint for single
calls (latency, paired, served), one thread per physical core, float32 pinned.

Float32 is pinned (INFERENCE_PRECISION_HINT=f32): on CPUs with AVX512_BF16 or AMX OpenVINO may
otherwise compute in bf16, a different and less precise model. Offline throughput compiles the
model again with the THROUGHPUT hint and keeps OPTIMAL_NUMBER_OF_INFER_REQUESTS requests in flight
through an AsyncInferQueue, since a synchronous call gains nothing from that hint.
"""

import time
from pathlib import Path

import numpy as np

from workbench import fingerprint
from workbench.engines import Engine
from workbench.engines.registry import OPENVINO
from workbench.errors import WorkbenchError

DEVICE = "CPU"
PRECISION = "f32"
LATENCY, THROUGHPUT = "LATENCY", "THROUGHPUT"
INSTALL = "pip install 'openvino==2026.4.*'"


def _openvino():
    try:
        import openvino
    except ImportError as exc:
        raise WorkbenchError(f"openvino cannot be imported ({exc}); install it: {INSTALL}") from None
    return openvino


def version() -> str | None:
    """The installed OpenVINO's version, without importing it (None: not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("openvino")
    except PackageNotFoundError:
        return None


def message(exc: Exception) -> str:
    """OpenVINO's message without the C++ source locations it opens with, on one line."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.startswith(("Exception from ", "Check '"))]
    return " ".join(lines)[:300] or type(exc).__name__


def configured(hint: str, threads: int = 0) -> dict:
    """What the engine asks OpenVINO for; also the settings a server's records carry."""
    return {"device": DEVICE, "performance_hint": hint,
            "inference_num_threads": threads or fingerprint.physical_cores(), "inference_precision": PRECISION,
            "openvino_version": version()}


def _compile(core, model, model_path: Path, hint: str, threads: int):
    config = {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": PRECISION}
    try:
        return core.compile_model(model, DEVICE, config)
    except Exception as exc:  # OpenVINO raises RuntimeError carrying its C++ trace
        raise WorkbenchError(f"OpenVINO cannot compile {model_path.name}: {message(exc)}") from None


def _settings(compiled, hint: str) -> dict:
    """What OpenVINO chose, read back from the compiled model."""
    return {**configured(hint, int(compiled.get_property("INFERENCE_NUM_THREADS"))),
            "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
            "num_streams": int(compiled.get_property("NUM_STREAMS")), "shapes": "the model's (dynamic batch)"}


def read(model_path: Path):
    """The OpenVINO Core and the model read from the ONNX file; one line naming the problem if it cannot."""
    core = _openvino().Core()
    try:
        return core, core.read_model(str(model_path))
    except Exception as exc:  # an operator it cannot convert, a file it cannot parse
        raise WorkbenchError(f"OpenVINO cannot read {model_path.name}: {message(exc)}") from None


def _ports(compiled, outputs: list[dict] | None, model_path: Path) -> list:
    """The compiled model's outputs in the order `outputs` names them (the model's order)."""
    if not outputs:
        return list(compiled.outputs)
    by_name = {name: port for port in compiled.outputs for name in port.get_names()}
    missing = [spec["name"] for spec in outputs if spec["name"] not in by_name]
    if missing:
        raise WorkbenchError(f"OpenVINO's reading of {model_path.name} has no output {missing[0]!r} "
                             f"(it has: {', '.join(sorted(by_name))})")
    return [by_name[spec["name"]] for spec in outputs]


def openvino_engine(model_path: Path, outputs: list[dict] | None = None, threads: int = 0) -> Engine:
    threads = threads or fingerprint.physical_cores()
    core, model = read(model_path)
    compiled = _compile(core, model, model_path, LATENCY, threads)
    request = compiled.create_infer_request()
    ports = _ports(compiled, outputs, model_path)

    def run(inputs):
        result = request.infer(inputs, share_inputs=True)  # outputs are copied out of the request
        return [result[port] for port in ports]

    def offline(inputs, batch: int, spec):
        throughput = _compile(core, model, model_path, THROUGHPUT, threads)
        settings = _settings(throughput, THROUGHPUT)
        settings["infer_requests"] = int(throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        return settings, async_offline(throughput, settings["infer_requests"], inputs, batch, spec.offline_s)

    names = tuple(spec["name"] for spec in outputs) if outputs else tuple(p.get_any_name() for p in ports)
    return Engine(OPENVINO, run, None, _settings(compiled, LATENCY), names, offline=offline)


def async_offline(compiled, requests: int, inputs, batch: int, duration_s: float) -> dict:
    """Batches kept in flight on `requests` infer requests for `duration_s`; each batch's latency
    runs from its start on an idle request to its completion callback."""
    from workbench.load.direct import offline_result

    queue = _openvino().AsyncInferQueue(compiled, requests)
    done: list[tuple[float, float]] = []
    queue.set_callback(lambda _request, started: done.append((started, time.perf_counter())))
    for _ in range(2 * requests):  # warm-up: each stream's first calls, discarded
        queue.start_async(inputs, time.perf_counter(), share_inputs=True)
    queue.wait_all()
    done.clear()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < duration_s:
        queue.get_idle_request_id()  # blocks until a request is free
        queue.start_async(inputs, time.perf_counter(), share_inputs=True)
    queue.wait_all()
    done.sort(key=lambda pair: pair[1])
    starts, ends = zip(*done)
    return offline_result(np.asarray(starts) - t0, np.asarray(ends) - t0, batch)


def open(*, model_path: Path, outputs: list[dict], threads: int = 0, **_) -> Engine:
    return openvino_engine(model_path, outputs, threads)
