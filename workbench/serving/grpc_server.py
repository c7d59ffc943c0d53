"""OIP v2 over gRPC (`inference.GRPCInferenceService`, `workbench serve --grpc-port`).

It runs on the REST server's event loop and calls into the same ServerApp: the same models,
batchers, limits (the largest body is the largest message; request bytes in flight count against
the same per-process budget) and metrics. The messages are the ones tritonclient ships compiled
(tritonclient.grpc.service_pb2), so the wire is exactly what Triton's clients speak. Requests are
parsed here, not by grpc, so a malformed message is INVALID_ARGUMENT (grpc's own parser would
answer INTERNAL); a client's mistake is INVALID_ARGUMENT, an unknown model NOT_FOUND, a full
queue RESOURCE_EXHAUSTED; an engine failure INTERNAL with a request id, the details in the log.
"""

import logging
import time
import uuid

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tritonclient.grpc import model_config_pb2
from tritonclient.grpc import service_pb2 as pb

from workbench.serving import triton
from workbench.serving.grpc_codec import decode_grpc_infer, encode_grpc_infer
from workbench.serving.metrics import InferTimes
from workbench.serving.protocol import RequestError

SERVICE = "inference.GRPCInferenceService"
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED,
         413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.RESOURCE_EXHAUSTED}
log = logging.getLogger("workbench.server")


class GrpcFrontEnd:
    def __init__(self, app, budget=None):
        """`app`: the ServerApp; `budget`: the REST side's BodyBudget, whose byte count gRPC shares."""
        self.app, self.budget = app, budget

    def handler(self) -> grpc.GenericRpcHandler:
        methods = {"ServerLive": (pb.ServerLiveRequest, self._live),
                   "ServerReady": (pb.ServerReadyRequest, self._ready),
                   "ModelReady": (pb.ModelReadyRequest, self._model_ready),
                   "ServerMetadata": (pb.ServerMetadataRequest, self._server_metadata),
                   "ModelMetadata": (pb.ModelMetadataRequest, self._model_metadata),
                   "ModelInfer": (pb.ModelInferRequest, self._infer),
                   "ModelConfig": (pb.ModelConfigRequest, self._config),
                   "ModelStatistics": (pb.ModelStatisticsRequest, self._statistics),
                   "RepositoryIndex": (pb.RepositoryIndexRequest, self._index),
                   "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, self._load),
                   "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, self._load)}
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(self._wrap(name, request_type, method),
                                                      response_serializer=lambda m: m.SerializeToString())
            for name, (request_type, method) in methods.items()})

    def _wrap(self, name: str, request_type, method):
        async def call(raw: bytes, context):
            try:
                try:
                    request = request_type.FromString(raw)
                except DecodeError as exc:
                    raise RequestError(400, f"{name}: the message is not a valid {request_type.__name__} ({exc})")
                return await method(request)
            except RequestError as exc:
                code, message = CODES.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), str(exc)
            except Exception:  # an engine failure: answer it, keep serving; the details stay in the log
                request_id = uuid.uuid4().hex[:12]
                log.exception("request %s: gRPC %s failed", request_id, name)
                code = grpc.StatusCode.INTERNAL
                message = (f"internal error while answering this request (request id {request_id}; the server's log "
                           "has the details)")
            await context.abort(code, message)
        return call

    def _model(self, name: str, version: str = ""):
        model = self.app._model(name)
        if version not in ("", "1"):
            raise RequestError(404, f"model '{name}' has version 1 only, not {version!r:.40}")
        return model

    async def _live(self, request):
        return pb.ServerLiveResponse(live=True)

    async def _ready(self, request):
        return pb.ServerReadyResponse(ready=True)

    async def _model_ready(self, request):
        self._model(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    async def _server_metadata(self, request):
        return pb.ServerMetadataResponse(name="workbench", version="1", extensions=triton.EXTENSIONS)

    async def _model_metadata(self, request):
        model = self._model(request.name, request.version)
        meta = model.metadata()
        return pb.ModelMetadataResponse(
            name=model.name, versions=meta["versions"], platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]])

    async def _config(self, request):
        config = self._model(request.name, request.version).config()
        return pb.ModelConfigResponse(config=json_format.ParseDict(config, model_config_pb2.ModelConfig()))

    async def _statistics(self, request):
        models = [self._model(request.name, request.version)] if request.name else self.app.models.values()
        stats = [m.statistics(self.app.metrics) for m in models]
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    async def _index(self, request):
        index = triton.repository_index(list(self.app.models))
        return json_format.ParseDict({"models": index}, pb.RepositoryIndexResponse())

    async def _load(self, request):
        raise RequestError(405, f"'{request.model_name}': {triton.UNSUPPORTED_REPOSITORY}")

    async def _infer(self, request):
        model = self._model(request.model_name, request.model_version)
        size, held, started, status, times = request.ByteSize(), 0, time.monotonic(), 500, InferTimes()
        try:
            held = self._hold(size)
            decoded = self.app.timed_decode(times, decode_grpc_infer, request, model.inputs, model.outputs)
            response = await self.app.answer(model, decoded, lambda metas, arrays: encode_grpc_infer(
                pb.ModelInferResponse, model.name, decoded.id, metas, arrays), times)
            status = 200
            return response
        except RequestError as exc:
            status = exc.status
            raise
        finally:
            if held:
                self.budget.held -= held
            self.app.record(model.name, status, time.monotonic() - started, times)  # all its statistics at once

    def _hold(self, size: int) -> int:
        """Count the request's bytes against the budget REST's bodies share (the bytes held), or refuse it now."""
        if self.budget is None:
            return 0
        if self.budget.held + size > self.budget.cap_bytes:
            raise RequestError(503, self.budget._busy_message(size))
        self.budget.held += size
        return size


def bind(front: GrpcFrontEnd, host: str, port: int, max_message_bytes: int, reuse_port: bool):
    """Bind (refusing a taken port); the caller starts the grpc.aio server once the batchers run, and stops it."""
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", -1),
               ("grpc.so_reuseport", 1 if reuse_port else 0)]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers([front.handler()])
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound != port:
        raise SystemExit(f"error: could not listen for gRPC on {address} (is the port taken?)")
    return server
