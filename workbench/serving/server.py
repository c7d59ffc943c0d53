"""Run the workbench server from a JSON config: `python -m workbench.serving.server config.json`.

`workbench serve` writes the config from bundles; `workbench bench` writes one per served engine.
Engines load before the socket opens, so "ready" on stdout and /v2/health/ready mean the models
answer. SIGTERM stops accepting, lets in-flight requests finish, then exits (uvicorn's shutdown).
"""

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from workbench.engines.loaders import open_engine
from workbench.serving.app import ServedModel, ServerApp
from workbench.serving.batcher import BatchPolicy
from workbench.serving.protocol import TensorMeta

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
    extra: dict = field(default_factory=dict)


@dataclass
class ServerConfig:
    models: list[ModelConfig]
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 << 20

    def to_json(self) -> str:
        from dataclasses import asdict
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ServerConfig":
        data = json.loads(text)
        return cls(**{**data, "models": [ModelConfig(**m) for m in data["models"]]})


def _metas(specs: list[dict]) -> list[TensorMeta]:
    return [TensorMeta(s["name"], s["dtype"], tuple(s["shape"])) for s in specs]


def served_model(config: ModelConfig) -> ServedModel:
    engine = open_engine(config.engine, model_path=Path(config.model_path),
                         build_dir=Path(config.build_dir) if config.build_dir else None,
                         outputs=config.outputs, providers=tuple(config.providers))
    sizes = engine.batch_sizes or (tuple(config.batch_sizes) if config.batch_sizes else None)
    max_batch = min(config.max_batch, max(sizes)) if sizes else config.max_batch
    policy = BatchPolicy(max_batch, config.max_delay_ms / 1000, max(config.max_queue_rows, max_batch), sizes)
    return ServedModel(config.name, engine, policy, _metas(config.inputs), _metas(config.outputs), config.extra)


def build_app(config: ServerConfig) -> ServerApp:
    from workbench.serving import predictions

    app = ServerApp({m.name: served_model(m) for m in config.models}, config.max_body_bytes)
    predictions.install(app)
    return app


async def serve(config: ServerConfig) -> None:
    import uvicorn

    app = build_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, loop="none",
                                           http="httptools", lifespan="on", access_log=False,
                                           log_level="warning", timeout_graceful_shutdown=30, proxy_headers=False,
                                           backlog=4096))

    async def announce():
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.01)
        names = ", ".join(f"{n} ({m.engine.kind})" for n, m in app.models.items())
        print(f"{READY_LINE}: http://{config.host}:{config.port} models: {names}", flush=True)

    announcer = asyncio.get_running_loop().create_task(announce())
    await server.serve()
    announcer.cancel()
    if not server.started:
        raise SystemExit(f"error: could not listen on {config.host}:{config.port} (is the port taken?)")


def run(config: ServerConfig) -> None:
    import uvloop

    uvloop.run(serve(config))


if __name__ == "__main__":
    run(ServerConfig.from_json(Path(sys.argv[1]).read_text()))
