"""Open Inference Protocol v2 (KServe / Triton "v2") request decoding and response encoding.

JSON tensors, and the binary tensor extension: when the `Inference-Header-Content-Length` header
is present, the body is that many bytes of JSON followed by the raw tensors in input order, each
input naming its byte count in `parameters.binary_data_size`.
"""

from dataclasses import dataclass

import math

import numpy as np
import orjson

DATATYPES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT64": "int64", "INT32": "int32",
             "INT16": "int16", "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
DATATYPE_OF = {v: k for k, v in DATATYPES.items()}


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str
    shape: tuple  # the first dimension is the batch; ints elsewhere

    @property
    def datatype(self) -> str:
        return DATATYPE_OF.get(self.dtype, self.dtype.upper())

    def as_v2(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": [-1, *self.shape[1:]]}


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    rows: int
    id: str | None
    binary_output: bool


def _tensor(entry: dict, meta: TensorMeta, binary: memoryview | None) -> np.ndarray:
    datatype, shape = entry.get("datatype"), entry.get("shape")
    if datatype != meta.datatype:
        raise RequestError(400, f"input '{meta.name}' must have datatype {meta.datatype}, got {datatype!r}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise RequestError(400, f"input '{meta.name}' needs a shape: a list of non-negative integers")
    if len(shape) != len(meta.shape) or list(shape[1:]) != list(meta.shape[1:]):
        expected = ["batch", *meta.shape[1:]]
        raise RequestError(400, f"input '{meta.name}' has shape {shape}; the model expects {expected}")
    if shape[0] < 1:
        raise RequestError(400, f"input '{meta.name}' has an empty batch")
    count = math.prod(shape)
    if binary is not None:
        size = count * np.dtype(meta.dtype).itemsize
        if len(binary) != size:
            raise RequestError(400, f"input '{meta.name}' carries {len(binary)} binary bytes; shape {shape} "
                                    f"of {datatype} needs {size}")
        return np.frombuffer(binary, meta.dtype).reshape(shape)
    data = entry.get("data")
    if not isinstance(data, list):
        raise RequestError(400, f"input '{meta.name}' needs \"data\": a list of {datatype} numbers")
    try:
        array = np.asarray(data, dtype=meta.dtype)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(400, f"input '{meta.name}' has data that is not a list of {datatype} numbers") from None
    if array.size != count:
        raise RequestError(400, f"input '{meta.name}' has {array.size} elements; shape {shape} needs {count}")
    return array.reshape(shape)


def decode_infer(body: bytes, header_length: int | None, specs: list[TensorMeta]) -> InferRequest:
    if not body:
        raise RequestError(400, "empty body: send a JSON inference request")
    head = body if header_length is None else body[:header_length]
    if header_length is not None and not 0 < header_length <= len(body):
        raise RequestError(400, f"Inference-Header-Content-Length {header_length} does not fit a {len(body)}-byte body")
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    entries = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RequestError(400, 'the request needs "inputs": a list of tensors')
    by_name = {e.get("name"): e for e in entries}
    expected = {m.name for m in specs}
    if set(by_name) != expected or len(entries) != len(specs):
        unknown = sorted(str(n) for n in set(by_name) - expected)
        missing = sorted(expected - set(by_name))
        raise RequestError(400, f"inputs must be exactly {sorted(expected)}" +
                           (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else ""))
    offset, view, inputs = header_length or 0, memoryview(body), {}
    for entry in entries:  # binary tensors follow the JSON in the order the inputs are listed
        meta = next(m for m in specs if m.name == entry["name"])
        binary = None
        if header_length is not None:
            size = (entry.get("parameters") or {}).get("binary_data_size")
            if size is not None:
                if not isinstance(size, int) or size < 0 or offset + size > len(body):
                    raise RequestError(400, f"input '{meta.name}' binary_data_size {size!r} runs past the body")
                binary, offset = view[offset:offset + size], offset + size
        inputs[meta.name] = _tensor(entry, meta, binary)
    rows = {a.shape[0] for a in inputs.values()}
    if len(rows) != 1:
        raise RequestError(400, f"all inputs must have the same batch dimension, got {sorted(rows)}")
    params = request.get("parameters") or {}
    return InferRequest(inputs, rows.pop(), request.get("id"), bool(params.get("binary_data_output")))


def encode_infer(model: str, request_id: str | None, metas: list[TensorMeta], outputs: list[np.ndarray],
                 binary: bool) -> tuple[bytes, dict[str, str]]:
    """The response body and any extra headers."""
    tensors, blobs = [], []
    for meta, out in zip(metas, outputs):
        entry = {"name": meta.name, "datatype": meta.datatype, "shape": list(out.shape)}
        if binary:
            blob = np.ascontiguousarray(out).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = out.ravel()
        tensors.append(entry)
    response = {"model_name": model, "model_version": "1", "outputs": tensors}
    if request_id is not None:
        response["id"] = request_id
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return head, {}
    return head + b"".join(blobs), {"inference-header-content-length": str(len(head))}
