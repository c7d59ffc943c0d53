"""The workbench model server as a plain ASGI app (run by uvicorn): OIP v2 REST, metrics.

Every refusal is a 4xx/503 with a JSON {"error": ...} body; nothing a client sends can stop the
server answering others.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field

import orjson

from workbench.dims import signature
from workbench.engines import Engine
from workbench.serving import predictions, triton
from workbench.serving.batcher import Batcher, BatchPolicy, BatchTooLarge, QueueFull
from workbench.serving.metrics import InferTimes, ServerMetrics
from workbench.serving.protocol import (
    InferRequest,
    RequestDecoder,
    RequestError,
    TensorMeta,
    encode_infer,
    header_length,
)

RETRY_AFTER_S = "1"
log = logging.getLogger("workbench.server")


@dataclass
class ServedModel:
    name: str
    engine: Engine
    policy: BatchPolicy
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    extra: dict = field(default_factory=dict)  # preprocessing, labels: used by /predictions
    batcher: Batcher | None = None
    decode: RequestDecoder = field(init=False, repr=False)  # REST's decode_infer, each header decoded once

    def __post_init__(self):
        self.decode = RequestDecoder(self.inputs, self.outputs)

    def metadata(self) -> dict:
        return {"name": self.name, "versions": ["1"], "platform": f"workbench-{self.engine.kind}",
                "inputs": [m.as_v2() for m in self.inputs], "outputs": [m.as_v2() for m in self.outputs],
                "parameters": {"batch_sizes": list(self.policy.batch_sizes or []), "max_batch": self.policy.max_batch,
                               "max_queue_delay_ms": self.policy.max_delay_s * 1000, "engine_threads": self.threads,
                               # a --dims build: the request shapes (less the batch) it runs, per input
                               **({"shapes": [{n: [-1, *d] for n, d in s} for s in sorted(self.engine.shapes)]}
                                  if self.engine.shapes is not None else {})}}

    @property
    def threads(self) -> int | None:
        """The threads the engine computes on, as it reports them (None: the null engine's none)."""
        keys = ("intra_op_num_threads", "inference_num_threads", "threads")  # ONNX Runtime, OpenVINO, TVM
        return next((self.engine.settings[k] for k in keys if k in self.engine.settings), None)

    def config(self) -> dict:
        """Triton's model configuration (GET /v2/models/<m>/config, gRPC ModelConfig)."""
        p = self.policy
        return triton.model_config(self.name, f"workbench-{self.engine.kind}", self.inputs, self.outputs,
                                   max_batch=p.max_batch, batch_sizes=p.batch_sizes, max_delay_s=p.max_delay_s,
                                   max_queue_rows=p.max_queue_rows, threads=self.threads)

    def statistics(self, metrics: ServerMetrics) -> dict:
        """Triton's statistics for this model (GET /v2/models/<m>/stats, gRPC ModelStatistics)."""
        executions, rows = metrics.batch.total(model=self.name)
        return triton.model_statistics(self.name, metrics.durations(self.name), int(rows), executions,
                                       metrics.last_inference_ms.get(self.name, 0))


class ServerApp:
    def __init__(self, models: dict[str, ServedModel], max_body_bytes: int = 64 << 20):
        self.models = models
        self.max_body_bytes = max_body_bytes
        self.metrics = ServerMetrics()
        self.on_startup = []  # awaited once the batchers run, before the server reports ready (gRPC's start)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for model in self.models.values():
                    model.batcher = Batcher(model.engine, model.policy, self._observer(model.name))
                    model.batcher.start()
                for start in self.on_startup:
                    await start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for model in self.models.values():
                    await model.batcher.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _observer(self, name: str):
        """The batch-level metrics; a request's own queue and compute time reach `record` with its answer."""
        def observe(batch, queue_s, compute_s):
            self.metrics.compute.observe(compute_s, model=name)
            self.metrics.batch.observe(batch.rows, model=name)
            if batch.size > batch.rows:
                self.metrics.padded.inc(batch.size - batch.rows, model=name)
        return observe

    def record(self, model: str, status: int, seconds: float, times: InferTimes | None) -> None:
        """Count a request to a served model when it is answered; an inference (`times` given) goes to the
        success statistics with all its phases at once, or to the fail statistics only. gRPC requests
        count under the HTTP status of the same meaning. Runs on the event loop without awaiting, as do
        the statistics' readers, so no snapshot sees a request in some phases and not others."""
        self.metrics.requests.inc(model=model, status=status)
        if times is None:
            return
        if status == 200:
            self.metrics.answered(model, seconds, times)
        else:
            self.metrics.failed.observe(seconds, model=model)

    async def _http(self, scope, receive, send):
        started = time.monotonic()
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        model_name, times = "-", InferTimes()
        try:
            parts = path.strip("/").split("/")
            if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
                model_name = parts[2]
            status, body, headers = await self._route(method, parts, scope, receive, times)
        except RequestError as exc:
            status, body, headers = exc.status, orjson.dumps({"error": str(exc)}), dict(exc.headers)
            if status == 503:
                headers["retry-after"] = RETRY_AFTER_S
        except Exception:  # an engine failure: answer it, keep serving; the details stay in the log
            request_id = uuid.uuid4().hex[:12]
            log.exception("request %s: %s %s failed", request_id, method, path)
            status, headers = 500, {"x-request-id": request_id}
            body = orjson.dumps({"error": f"internal error while answering this request (request id {request_id}; "
                                          "the server's log has the details)"})
        if model_name in self.models:
            self.record(model_name, status, time.monotonic() - started, times if parts[-1] == "infer" else None)
        content_type = headers.pop("content-type", "application/json")
        raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               (b"x-content-type-options", b"nosniff")]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def _model(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise RequestError(404, f"unknown model '{name}'; this server has: {', '.join(sorted(self.models))}")
        return model

    async def _route(self, method: str, parts: list[str], scope, receive, times: InferTimes):
        if len(parts) == 4 and parts[3] == "infer" and parts[0] == "v2" and parts[1] == "models":  # the hot path
            _allow(method, "POST")
            return await self._infer(self._model(parts[2]), scope, receive, times)
        ok = orjson.dumps
        if parts == ["v2", "health", "live"] or parts == ["v2", "health", "ready"]:
            _allow(method, "GET")
            return 200, ok({"live": True, "ready": True}), {}
        if parts == ["v2"]:
            _allow(method, "GET")
            return 200, ok({"name": "workbench", "version": "1", "extensions": triton.EXTENSIONS}), {}
        if parts[:2] == ["v2", "repository"]:
            return self._repository(method, parts[2:])
        if parts == ["metrics"]:
            _allow(method, "GET")
            depths = {n: m.batcher.queue.rows for n, m in self.models.items()}
            return 200, self.metrics.render(depths).encode(), {"content-type": "text/plain; version=0.0.4"}
        if parts == ["v2", "models", "stats"] and "stats" not in self.models:  # Triton's: every model's
            _allow(method, "GET")
            return 200, ok({"model_stats": [m.statistics(self.metrics) for m in self.models.values()]}), {}
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            model = self._model(parts[2])
            rest = parts[3:]
            if rest[:2] == ["versions", "1"]:
                rest = rest[2:]
            if rest == []:
                _allow(method, "GET")
                return 200, ok(model.metadata()), {}
            if rest == ["ready"]:
                _allow(method, "GET")
                return 200, ok({"name": model.name, "ready": True}), {}
            if rest == ["config"]:
                _allow(method, "GET")
                return 200, ok(model.config()), {}
            if rest == ["stats"]:
                _allow(method, "GET")
                return 200, ok({"model_stats": [model.statistics(self.metrics)]}), {}
            if rest == ["infer"]:
                _allow(method, "POST")
                return await self._infer(model, scope, receive, times)
        if len(parts) == 2 and parts[0] == "predictions":
            return await predictions.handle(self, self._model(parts[1]), method, scope, receive)
        raise RequestError(404, f"no route for {method} /{'/'.join(parts)}; see GET /v2 and /v2/models/<name>")

    def _repository(self, method: str, rest: list[str]):
        """Triton's model repository extension, read-only: the index, and a clear refusal to load or unload."""
        if rest == ["index"]:
            _allow(method, "POST")
            return 200, orjson.dumps(triton.repository_index(list(self.models))), {}
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            _allow(method, "POST")
            raise RequestError(400, f"{rest[2]} '{rest[1]}': {triton.UNSUPPORTED_REPOSITORY}")
        raise RequestError(404, f"no route for {method} /v2/repository/{'/'.join(rest)}; see POST /v2/repository/index")

    async def read_body(self, scope, receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestError(413, f"body of {declared} bytes is over the {self.max_body_bytes}-byte limit")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestError(413, f"body is over the {self.max_body_bytes}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def run_model(self, model: ServedModel, inputs, rows: int, times: InferTimes | None = None):
        """The engine's outputs for one request, through the batcher; its queue and compute time go on `times`."""
        shape = signature(inputs)  # once per request: the check below and the batcher's grouping
        if model.engine.shapes is not None and shape not in model.engine.shapes:
            raise RequestError(400, f"no compiled variant takes inputs of shape {_shown(shape)}; this "
                                    f"server runs {' or '.join(_shown(s) for s in sorted(model.engine.shapes))}")
        try:
            outputs, queue_s, compute_s = await model.batcher.infer_timed(inputs, rows, shape)
        except QueueFull as exc:
            raise RequestError(503, f"server busy: {exc}; retry after {RETRY_AFTER_S} s") from None
        except BatchTooLarge as exc:
            raise RequestError(400, f"{exc}; split the request into batches of at most "
                                    f"{model.policy.max_batch} rows") from None
        if times is not None:
            times.queue, times.compute = queue_s, compute_s
        return outputs

    @staticmethod
    def timed_decode(times: InferTimes, decode, *args) -> InferRequest:
        """Decode a request, its time going on `times` (compute_input once the request succeeds; a refused
        request's decode is part of its fail time only, as in Triton)."""
        started = time.perf_counter()
        request = decode(*args)
        times.decode = time.perf_counter() - started
        return request

    async def answer(self, model: ServedModel, request: InferRequest, encode, times: InferTimes):
        """Run a decoded request; `encode(metas, outputs)` makes the answer. Its queue, compute and encode
        times go on `times`, which `record` observes when the answer is sent."""
        outputs = await self.run_model(model, request.inputs, request.rows, times)
        chosen = [next(i for i, m in enumerate(model.outputs) if m.name == name) for name in request.outputs]
        started = time.perf_counter()
        encoded = encode([model.outputs[i] for i in chosen], [outputs[i] for i in chosen])
        times.encode = time.perf_counter() - started
        return encoded

    async def _infer(self, model: ServedModel, scope, receive, times: InferTimes):
        body = await self.read_body(scope, receive)
        length = header_length(_header(scope, b"inference-header-content-length"))
        request = self.timed_decode(times, model.decode, body, length)
        body, headers = await self.answer(
            model, request, lambda metas, outs: encode_infer(model.name, request.id, metas, outs, request.binary),
            times)
        if headers:
            headers["content-type"] = "application/octet-stream"
        return 200, body, headers


def _shown(shape: tuple) -> str:
    """A request shape signature as people write it: x [batch, 128, 64]."""
    return ", ".join(f"{name} [batch{''.join(f', {d}' for d in dims)}]" for name, dims in shape)


def _allow(method: str, allowed: str) -> None:
    """HEAD goes with GET (uvicorn sends no body for it)."""
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        raise RequestError(405, f"use {allowed} here, not {method}", {"allow": f"{allowed}, HEAD" if allowed == "GET"
                                                                      else allowed})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
