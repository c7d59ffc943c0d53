"""The serving stack's floor: server CPU per request of servers that do no work, beside ours.

    python scripts/serving_floor.py [--seconds 6] [--rounds 2] [--concurrency 64]

Each server answers mlp's v2 infer request (binary tensors over REST; ModelInfer over gRPC) and is
loaded by bench's own generator at the given concurrency; the figure is the server process's CPU
seconds (user and system, all threads) over the requests answered, as `server_cpu_us_per_request`
in bench's records. The floors answer a canned response without reading it:

- `uvicorn`: a bare ASGI app on uvicorn (uvloop, httptools, access log off), as our server runs it;
- `granian-asgi`, `granian-rsgi`: the same app on granian, a Rust HTTP server (ASGI, and its own
  RSGI interface; one worker on uvloop; not a dependency: `pip install granian` to measure it);
- `grpc-aio`, `grpc-sync`: a bare grpcio server, `grpc.aio` on uvloop and the synchronous one;
- `workbench-null`, `workbench-null-grpc`: our server with the null engine (zeros at once), REST and gRPC.

The servers alternate round by round (a shared machine's speed moves between runs) and the script
prints every run. Nothing else may load the cores while it runs.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench.load.generator import LoadSpec, closed_loop, run  # noqa: E402
from workbench.load.grpc_client import GrpcEndpoint, infer_request  # noqa: E402
from workbench.load.http import Endpoint  # noqa: E402
from workbench.serving.process import free_port  # noqa: E402
from workbench.serving.protocol import encode_binary_request  # noqa: E402

MODEL, INPUT, OUTPUT = "mlp", "input", "logits"
OUT = np.zeros((1, 10), np.float32)  # mlp's answer to one row


def _rest_answer() -> tuple[bytes, bytes]:
    head = json.dumps({"model_name": MODEL, "model_version": "1", "outputs": [
        {"name": OUTPUT, "datatype": "FP32", "shape": [1, 10], "parameters": {"binary_data_size": OUT.nbytes}}]})
    return head.encode() + OUT.tobytes(), str(len(head)).encode()


def canned_asgi():
    """A bare ASGI app: reads the request, answers mlp's canned binary response."""
    body, head_length = _rest_answer()
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(body)).encode()),
               (b"inference-header-content-length", head_length)]

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def canned_rsgi():
    """The same as an RSGI app (granian's own interface, no ASGI message dicts)."""
    body, head_length = _rest_answer()
    headers = [("content-type", "application/octet-stream"), ("inference-header-content-length", head_length.decode())]

    async def app(scope, protocol):
        await protocol()
        protocol.response_bytes(200, headers, body)

    return app


def bare_uvicorn(port: int) -> None:
    import uvicorn

    uvicorn.run(canned_asgi(), host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning")


def bare_granian(port: int, interface: str) -> list[str]:
    """The command running granian (a Rust HTTP server; not a dependency: pip install granian) with
    one worker on uvloop; its worker is a child process, counted with it."""
    return [sys.executable, "-m", "granian", "--interface", interface, "--workers", "1", "--loop", "uvloop",
            "--host", "127.0.0.1", "--port", str(port), "--http", "1", "--no-ws", "--log-level", "warning", "--factory",
            f"scripts.serving_floor:canned_{interface}"]


def bare_grpc(port: int, synchronous: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from tritonclient.grpc import service_pb2 as pb

    answer = pb.ModelInferResponse(model_name=MODEL, model_version="1")
    answer.outputs.add(name=OUTPUT, datatype="FP32", shape=[1, 10])
    answer.raw_output_contents.append(OUT.tobytes())
    raw = answer.SerializeToString()

    def handlers(infer):
        return [grpc.method_handlers_generic_handler("inference.GRPCInferenceService",
                                                     {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)})]

    if synchronous:
        server = grpc.server(ThreadPoolExecutor(8), handlers=handlers(lambda request, context: raw))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        server.wait_for_termination()
        return

    async def infer(request, context):
        return raw

    async def main():
        server = grpc.aio.server(handlers=handlers(infer))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    import uvloop

    uvloop.run(main())


def _workbench_config(folder: Path, port: int, grpc_port: int | None) -> Path:
    from workbench import models
    from workbench.serving.server import ModelConfig, ServerConfig

    source = models.resolve(MODEL)
    model = models.load(source)
    config = ServerConfig([ModelConfig(MODEL, "null", str(source.path), models.spec_dicts(models.input_specs(model)),
                                       models.spec_dicts(models.output_specs(model)))],
                          port=port, grpc_port=grpc_port)
    out = folder / f"server-{port}.json"
    out.write_text(config.to_json())
    return out


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of the process and its children (granian's worker)."""
    import psutil

    process = psutil.Process(pid)
    return sum(t.user + t.system for t in (p.cpu_times() for p in [process, *process.children(recursive=True)]))


def _wait_for_port(port: int, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"error: nothing listened on port {port} within {timeout_s:g} s")


def measure(name: str, folder: Path, seconds: float, concurrency: int) -> str:
    port, grpc_port = free_port(), free_port()
    python = [sys.executable, "-c"]
    start = f"import sys; sys.path.insert(0, {str(REPO)!r}); import scripts.serving_floor as f; "
    grpc = name.endswith("grpc") or name.startswith("grpc")
    argv = {"uvicorn": python + [start + f"f.bare_uvicorn({port})"],
            "granian-asgi": bare_granian(port, "asgi"),
            "granian-rsgi": bare_granian(port, "rsgi"),
            "grpc-aio": python + [start + f"f.bare_grpc({grpc_port}, False)"],
            "grpc-sync": python + [start + f"f.bare_grpc({grpc_port}, True)"],
            "workbench-null": [sys.executable, "-m", "workbench.serving.server",
                               str(_workbench_config(folder, port, None))],
            "workbench-null-grpc": [sys.executable, "-m", "workbench.serving.server",
                                    str(_workbench_config(folder, port, grpc_port))]}[name]
    sample = {INPUT: np.random.default_rng(0).standard_normal((1, 64), dtype=np.float32)}
    if grpc:
        endpoint, request = GrpcEndpoint("127.0.0.1", grpc_port), infer_request(MODEL, sample)
    else:
        endpoint = Endpoint.parse(f"http://127.0.0.1:{port}", f"/v2/models/{MODEL}/infer")
        request = endpoint.post(*encode_binary_request(sample))
    server = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(grpc_port if grpc else port)
        time.sleep(0.5)
        before = _cpu_seconds(server.pid)
        result = run(closed_loop(LoadSpec(endpoint, [request], duration_s=seconds, warmup_s=1), concurrency))
        spent = _cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait(30)
    answered = int((result.status == 200).sum())
    return (f"| {name} | {answered:,} | {answered / (seconds + 1):,.0f} | "
            f"{1e6 * spent / max(answered, 1):.1f} us |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--only", default="uvicorn,workbench-null,grpc-aio,grpc-sync,workbench-null-grpc")
    args = parser.parse_args()
    print(f"| server | requests | req/s | server CPU per request (c{args.concurrency}) |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for name in args.only.split(","):
                print(measure(name, Path(folder), args.seconds, args.concurrency), flush=True)


if __name__ == "__main__":
    main()
