"""Run the workbench server from a JSON config: `python -m workbench.serving.server config.json`.

`workbench serve` writes the config from bundles; `workbench bench` writes one per served engine.
Engines load before the socket opens, so "ready" on stdout and /v2/health/ready mean the models
answer. SIGTERM stops accepting, lets in-flight requests finish, then exits (uvicorn's shutdown).
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from workbench.engines.registry import open_engine
from workbench.serving.app import ServedModel, ServerApp
from workbench.serving.batcher import BatchPolicy, largest_batch
from workbench.serving.limits import BodyBudget, timed_protocol
from workbench.serving.protocol import tensor_metas

READY_LINE = "workbench-server ready"


@dataclass
class ModelConfig:
    name: str
    engine: str
    model_path: str
    inputs: list[dict]
    outputs: list[dict]
    build_dir: str | None = None
    batch_sizes: list[int] | None = None  # compiled sizes (tvm); None: any size
    max_batch: int = 32
    max_delay_ms: float = 0.0
    max_queue_rows: int = 2048
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: int = 0  # the engine's threads (registry.check_threads); 0: one per physical core
    extra: dict = field(default_factory=dict)


@dataclass
class ServerConfig:
    models: list[ModelConfig]
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int | None = None  # OIP v2 over gRPC on the same host; None: REST only
    max_body_bytes: int = 64 << 20
    workers: int = 1  # processes sharing the socket, each with its own engines and batchers
    header_timeout_s: float = 10.0  # from connect (or a kept-alive request's first byte) to its last header
    body_timeout_s: float = 30.0  # from the headers to the body's last byte
    max_body_bytes_in_flight: int = 256 << 20  # request bodies held at once, per worker process

    def to_json(self) -> str:
        from dataclasses import asdict
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ServerConfig":
        data = json.loads(text)
        return cls(**{**data, "models": [ModelConfig(**m) for m in data["models"]]})


def fixed_batch(inputs: list[dict]) -> tuple[int, ...] | None:
    """A model whose inputs fix the batch (a static first dimension, -1 where it is dynamic) runs
    at that size only: two of its requests must not be joined into one call, and fewer rows are padded up."""
    firsts = {s["shape"][0] for s in inputs if s["shape"]}  # a bundle names a dynamic dimension
    return (firsts.pop(),) if len(firsts) == 1 and isinstance(min(firsts), int) and min(firsts) > 0 else None


def served_model(config: ModelConfig) -> ServedModel:
    engine = open_engine(config.engine, model_path=Path(config.model_path),
                         build_dir=Path(config.build_dir) if config.build_dir else None,
                         outputs=config.outputs, providers=tuple(config.providers), threads=config.threads)
    sizes = (engine.batch_sizes or (tuple(config.batch_sizes) if config.batch_sizes else None)
             or fixed_batch(config.inputs))
    max_batch = largest_batch(config.max_batch, sizes)
    inputs, outputs = tensor_metas(config.inputs, config.inputs), tensor_metas(config.outputs, config.inputs)
    policy = BatchPolicy(max_batch, config.max_delay_ms / 1000, max(config.max_queue_rows, max_batch), sizes,
                         whole_inputs=frozenset(m.name for m in inputs if not m.batched),
                         whole_outputs=frozenset(i for i, m in enumerate(outputs) if not m.batched))
    return ServedModel(config.name, engine, policy, inputs, outputs, config.extra)


def max_body_bytes(config: ServerConfig) -> int:
    # A body larger than the in-flight cap could never be admitted: refuse it with 413, not 503 forever.
    return min(config.max_body_bytes, config.max_body_bytes_in_flight)


def build_app(config: ServerConfig) -> ServerApp:
    return ServerApp({m.name: served_model(m) for m in config.models}, max_body_bytes(config))


def _graceful_server(config):
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises a caught SIGTERM once its graceful shutdown is done, which kills the
        process before its caller cleans up (`serve`'s extracted bundle); here a stop returns normally.
        `before_shutdown` runs first (the gRPC server finishing its calls while the batchers still run)."""

        before_shutdown: list = []

        async def shutdown(self, sockets=None):
            for stop in self.before_shutdown:
                await stop()
            await super().shutdown(sockets)

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return GracefulServer(config)


async def serve(config: ServerConfig, sock) -> None:
    import uvicorn

    app = build_app(config)
    limited = BodyBudget(app, config.max_body_bytes_in_flight, max_body_bytes(config))
    protocol = timed_protocol(config.header_timeout_s, config.body_timeout_s)
    server = _graceful_server(uvicorn.Config(limited, loop="none", http=protocol, lifespan="on", access_log=False,
                                           server_header=False, log_level="warning", timeout_graceful_shutdown=30,
                                           proxy_headers=False))
    grpc = None
    if config.grpc_port:
        from workbench.serving import grpc_server

        grpc = grpc_server.bind(grpc_server.GrpcFrontEnd(app, limited), config.host, config.grpc_port,
                                max_body_bytes(config), reuse_port=config.workers > 1)
        app.on_startup.append(grpc.start)  # once the batchers run, before uvicorn answers ready
        server.before_shutdown = [lambda: grpc.stop(30)]

    async def announce():
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        also = f" grpc: {config.host}:{config.grpc_port}" if grpc is not None else ""
        names = ", ".join(f"{n} ({m.engine.kind})" for n, m in app.models.items())
        print(f"{READY_LINE}: http://{config.host}:{config.port}{also} models: {names} (pid {os.getpid()})",
              flush=True)

    announcer = asyncio.get_running_loop().create_task(announce())
    await server.serve(sockets=[sock])
    announcer.cancel()


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"error: could not listen on {host}:{port}: {exc.strerror} (is the port taken?)") from None
    sock.listen(4096)
    return sock


def run(config: ServerConfig) -> None:
    """Bind once, then serve in this process or in `workers` forked children sharing the socket.

    Children fork before any engine is loaded (engines start threads, which do not survive a fork);
    the parent forwards SIGTERM/SIGINT to them and waits, so a graceful stop stays graceful."""
    import uvloop

    # TVM's pool threads spin 300,000 times for the next task before sleeping. In a server they
    # spin while the loop thread parses the next request, taking the cores it needs. Set before
    # any engine loads, since TVM reads it once.
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")
    sock = listen(config.host, config.port)
    if config.workers <= 1:
        uvloop.run(serve(config, sock))
        return
    children = []
    for _ in range(config.workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            uvloop.run(serve(config, sock))
            os._exit(0)
        children.append(pid)

    def forward(signum, _frame):
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    raise SystemExit(max(codes, key=abs))


if __name__ == "__main__":
    run(ServerConfig.from_json(Path(sys.argv[1]).read_text()))
