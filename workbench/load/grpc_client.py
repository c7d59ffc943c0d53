"""OIP v2 over gRPC for the load generator: `bench --protocol grpc` against the workbench server.

A GrpcConnection looks to the generator like an HTTP one (`send(payload)` answers a status code,
`closed`, `transport.close()`): the payload is a ModelInferRequest serialized once, with raw binary
tensors; the answer's bytes are not parsed (correctness is checked before the load starts). Each
connection has its own channel and its own TCP connection (no shared subchannel pool), as each HTTP
connection has, so concurrency means the same thing over both protocols.
"""

import asyncio
from dataclasses import dataclass

import numpy as np

from workbench.serving.protocol import DATATYPE_OF

METHOD = "/inference.GRPCInferenceService/ModelInfer"
STATUS_TIMEOUT = -1  # as the generator counts them
STATUS_OF = {"OK": 200, "INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 503,
             "UNIMPLEMENTED": 501}  # everything else a client cannot fix is a 500


@dataclass(frozen=True)
class GrpcEndpoint:
    host: str
    port: int
    timeout_s: float = 30.0

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def connect(self) -> "GrpcConnection":
        return GrpcConnection(self)


def infer_request(model: str, inputs: dict[str, np.ndarray]) -> bytes:
    """A serialized ModelInferRequest carrying the inputs as raw_input_contents."""
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        request.inputs.add(name=name, datatype=DATATYPE_OF[str(array.dtype)], shape=array.shape)
        request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    return request.SerializeToString()


def decode_infer_response(body: bytes) -> dict[str, np.ndarray]:
    """A ModelInferResponse's raw outputs by name (the correctness check's half)."""
    from tritonclient.grpc import service_pb2 as pb

    from workbench.serving.protocol import DATATYPES

    response = pb.ModelInferResponse.FromString(body)
    return {o.name: np.frombuffer(raw, DATATYPES[o.datatype]).reshape(tuple(o.shape))
            for o, raw in zip(response.outputs, response.raw_output_contents, strict=True)}


class GrpcConnection:
    def __init__(self, endpoint: GrpcEndpoint):
        import grpc

        self._grpc = grpc
        self.endpoint = endpoint
        self.closed = False
        self.transport = self  # the generator closes a connection through its transport
        self._channel = grpc.aio.insecure_channel(endpoint.target, options=[
            ("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1)])
        self._call = self._channel.unary_unary(METHOD)  # bytes in, bytes out

    async def send(self, payload: bytes) -> int:
        try:
            await self._call(payload, timeout=self.endpoint.timeout_s)
            return 200
        except self._grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
                return STATUS_TIMEOUT
            if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.CANCELLED):
                self.close()
                raise ConnectionError(f"gRPC {code.name}: {exc.details()}") from None
            return STATUS_OF.get(code.name, 500)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().create_task(self._channel.close())



async def check(endpoint: GrpcEndpoint, payload: bytes) -> dict[str, np.ndarray]:
    """One call whose answer is decoded: the correctness check before the load."""
    connection = GrpcConnection(endpoint)
    try:
        return decode_infer_response(await connection._call(payload, timeout=endpoint.timeout_s))
    finally:
        connection.closed = True
        await connection._channel.close()
