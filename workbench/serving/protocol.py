"""Open Inference Protocol v2 (KServe / Triton "v2") request decoding and response encoding.

JSON tensors, and the binary tensor extension: when the `Inference-Header-Content-Length` header
is present, the body is that many bytes of JSON followed by the raw tensors in input order, each
input naming its byte count in `parameters.binary_data_size`.
"""

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import orjson

DATATYPES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT64": "int64", "INT32": "int32",
             "INT16": "int16", "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
DATATYPE_OF = {v: k for k, v in DATATYPES.items()}


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str
    shape: tuple  # the first dimension is the batch; ints elsewhere, or a name (or -1) where --dims sizes it
    # False for a tensor whose first dimension is fixed beside batched ones (a scale, a shape, indices):
    # every request sends it whole, requests join a batch only when theirs are equal, and it is never cut
    batched: bool = True

    # Derived once per model, not per request (a frozen dataclass still has the __dict__ these use).
    @cached_property
    def datatype(self) -> str:
        return DATATYPE_OF.get(self.dtype, self.dtype.upper())

    @cached_property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @cached_property
    def checked_dims(self) -> tuple[int, ...]:
        """The dimensions a request's shape must match: past the batch (all of a tensor not batched),
        -1 where any size goes."""
        return tuple(_v2_dim(e) for e in self.shape[1 if self.batched else 0:])

    def as_v2(self) -> dict:
        first = -1 if self.batched else _v2_dim(self.shape[0])
        return {"name": self.name, "datatype": self.datatype, "shape": [first, *map(_v2_dim, self.shape[1:])]}


def tensor_metas(specs: list[dict], inputs: list[dict]) -> list[TensorMeta]:
    """Metas of {name, dtype, shape} specs (the model's inputs or outputs): a tensor whose first
    dimension is dynamic is batched; one whose first dimension is fixed is not, unless no input's
    is dynamic (a model that fixes its batch, whose first dimension is that batch)."""
    dynamic = lambda spec: bool(spec["shape"]) and _v2_dim(spec["shape"][0]) == -1  # noqa: E731
    fixed_batch = not any(dynamic(i) for i in inputs)
    # a scalar (rank 0) has no first dimension to batch on
    return [TensorMeta(s["name"], s["dtype"], tuple(s["shape"]),
                       batched=dynamic(s) or (fixed_batch and bool(s["shape"]))) for s in specs]


def _v2_dim(d) -> int:
    return d if isinstance(d, int) and d >= 0 else -1


def _fits(shape: list, meta: TensorMeta) -> bool:
    """The request's shape matches the model's past the batch (a tensor that is not batched: all of
    it); a dynamic dimension (--dims) takes any size here, and the engine says which sizes it runs
    (a TVM build: its compiled ones)."""
    skip = 1 if meta.batched else 0
    return len(shape) == len(meta.shape) and all(e == -1 or d == e for d, e in zip(shape[skip:], meta.checked_dims))


def common_rows(inputs: dict[str, np.ndarray], specs: list[TensorMeta]) -> int:
    """The request's batch, once every input has the same one and each named dynamic dimension
    (--dims) has one size of at least 1 across the inputs: no engine runs `seq` 8 on one input and
    16 on another, and ONNX Runtime would answer such a request with an error, not a 400."""
    rows = {inputs[m.name].shape[0] for m in specs if m.batched and m.name in inputs} or {1}  # scalars only: 1 row
    if len(rows) != 1:
        raise RequestError(400, f"all inputs must have the same batch dimension, got {sorted(rows)}")
    sizes: dict[str, set[int]] = {}
    for meta in specs:
        if meta.name in inputs:
            for name, size in zip(meta.shape[1:], inputs[meta.name].shape[1:]):
                if isinstance(name, str):
                    sizes.setdefault(name, set()).add(size)
    for name, found in sizes.items():
        if len(found) != 1 or min(found) < 1:
            raise RequestError(400, f"dimension '{name}' must be one size of at least 1 across the inputs, "
                                    f"got {sorted(found)}")
    return rows.pop()


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    rows: int
    id: str | None
    outputs: list[str]  # the outputs asked for, in the order to answer them
    binary: list[bool]  # per asked-for output: answer it as raw bytes after the JSON


_HEADER_LENGTH = re.compile(r"[0-9]{1,15}")


def header_length(value: str | None) -> int | None:
    """`Inference-Header-Content-Length` as a byte count (ASCII digits only: str.isdigit takes '²')."""
    if value is None:
        return None
    if not _HEADER_LENGTH.fullmatch(value):
        raise RequestError(400, "Inference-Header-Content-Length must be a byte count (up to 15 ASCII digits)")
    return int(value)


def _object(value, what: str) -> dict:
    """An optional JSON object: absent is empty, anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# The Python types JSON numbers arrive as, per tensor kind: a bool is not a number, nor a numeric string.
_JSON_TYPES = {"f": {int, float}, "i": {int}, "u": {int}, "b": {bool}}


def _json_data(data: list, meta: TensorMeta, shape: list[int]) -> np.ndarray:
    cells = np.asarray(data, dtype=object)  # keeps each element's JSON type, for the check below
    dtype = np.dtype(meta.dtype)
    found = set(map(type, cells.ravel()))
    if not found <= _JSON_TYPES[dtype.kind]:
        odd = sorted(t.__name__ for t in found - _JSON_TYPES[dtype.kind])
        kind = "true/false values" if dtype.kind == "b" else "numbers"
        raise RequestError(400, f"input '{meta.name}' has data that is not a list of {meta.datatype} {kind} "
                                f"(found {', '.join(odd)}); send a flat or nested list of {kind}")
    if cells.size != math.prod(shape):
        raise RequestError(400, f"input '{meta.name}' has {cells.size} elements; shape {shape} needs "
                                f"{math.prod(shape)}")
    if dtype.kind in "iu" and cells.size:
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
        if min(cells.flat) < low or max(cells.flat) > high:
            raise RequestError(400, f"input '{meta.name}' has values outside {meta.datatype}'s range "
                                    f"[{low}, {high}]")
    with np.errstate(over="ignore"):  # a float past FP32's range becomes inf, refused below
        return cells.astype(dtype).reshape(shape)


def _tensor(entry: dict, meta: TensorMeta, binary: memoryview | None) -> np.ndarray:
    datatype, shape = entry.get("datatype"), entry.get("shape")
    if datatype != meta.datatype:
        raise RequestError(400, f"input '{meta.name}' must have datatype {meta.datatype}, got {datatype!r}")
    if not (isinstance(shape, list) and all(_count(d) for d in shape)):
        raise RequestError(400, f"input '{meta.name}' needs a shape: a list of non-negative integers")
    if not _fits(shape, meta):
        expected = ["batch", *meta.shape[1:]] if meta.batched else list(meta.shape)
        raise RequestError(400, f"input '{meta.name}' has shape {shape}; the model expects {expected}")
    if meta.batched and shape[0] < 1:
        raise RequestError(400, f"input '{meta.name}' has an empty batch")
    if binary is not None:
        size = math.prod(shape) * meta.np_dtype.itemsize
        if len(binary) != size:
            raise RequestError(400, f"input '{meta.name}' carries {len(binary)} binary bytes; shape {shape} "
                                    f"of {datatype} needs {size}")
        array = np.frombuffer(binary, meta.np_dtype).reshape(shape)
    else:
        data = entry.get("data")
        if not isinstance(data, list):
            raise RequestError(400, f"input '{meta.name}' needs \"data\": a list of {datatype} numbers")
        array = _json_data(data, meta, shape)
    return _finite(array, meta)


def _finite(array: np.ndarray, meta: TensorMeta) -> np.ndarray:
    """TVM's lowering turns NaN into finite numbers where ONNX Runtime keeps NaN: refuse rather than
    answer numbers that silently differ from the model's."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise RequestError(400, f"input '{meta.name}' has {bad} value(s) that are NaN, infinite or outside "
                                f"{meta.datatype}'s range; this server accepts finite numbers only")
    return array


decode_tensor = _tensor  # one tensor's checks, shared with the gRPC codec (serving/grpc_codec.py)


def _entries(request) -> list[dict]:
    entries = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RequestError(400, 'the request needs "inputs": a list of tensors')
    for entry in entries:
        if not isinstance(entry.get("name"), str):
            raise RequestError(400, f"every input needs a \"name\" string, got {entry.get('name')!r:.60}")
        _object(entry.get("parameters"), f"input '{entry['name']}' parameters")
    return entries


def _asked_outputs(request: dict, outputs: list[TensorMeta], binary_default: bool) -> tuple[list[str], list[bool]]:
    """The outputs the request names (all when it names none), and whether each goes back as bytes."""
    asked = request.get("outputs")
    if asked is None:
        return [m.name for m in outputs], [binary_default] * len(outputs)
    known = [m.name for m in outputs]
    if not isinstance(asked, list) or not asked or not all(isinstance(o, dict) for o in asked):
        raise RequestError(400, '"outputs", when given, must be a non-empty list of {"name": ...} objects')
    names, binary = [], []
    for entry in asked:
        name = entry.get("name")
        if name not in known:
            raise RequestError(400, f"unknown output {name!r:.60}; this model's outputs are {known}")
        if name in names:
            raise RequestError(400, f"output '{name}' is asked for twice")
        params = _object(entry.get("parameters"), f"output '{name}' parameters")
        if "classification" in params:
            raise RequestError(400, f"output '{name}': the classification extension is not supported; "
                                    "ask for the raw output")
        wants = params.get("binary_data", binary_default)
        if not isinstance(wants, bool):
            raise RequestError(400, f"output '{name}' parameters.binary_data must be true or false")
        names.append(name)
        binary.append(wants)
    return names, binary


asked_outputs = _asked_outputs


def decode_infer(body: bytes, header_length: int | None, specs: list[TensorMeta],
                 outputs: list[TensorMeta] = ()) -> InferRequest:
    if not body:
        raise RequestError(400, "empty body: send a JSON inference request")
    head = body if header_length is None else body[:header_length]
    if header_length is not None and not 0 < header_length <= len(body):
        raise RequestError(400, f"Inference-Header-Content-Length {header_length} does not fit a {len(body)}-byte body")
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    entries = _entries(request)
    by_name = {e["name"]: e for e in entries}
    expected = {m.name for m in specs}
    if set(by_name) != expected or len(entries) != len(specs):
        unknown = sorted(set(by_name) - expected)
        missing = sorted(expected - set(by_name))
        raise RequestError(400, f"inputs must be exactly {sorted(expected)}" +
                           (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else ""))
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, f'"id" must be a string, got {type(request_id).__name__}')
    params = _object(request.get("parameters"), "the request's parameters")
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise RequestError(400, "parameters.binary_data_output must be true or false")
    offset, view, inputs = header_length or 0, memoryview(body), {}
    meta_of = {m.name: m for m in specs}
    for entry in entries:  # binary tensors follow the JSON in the order the inputs are listed
        meta = meta_of[entry["name"]]
        binary = None
        size = (entry.get("parameters") or {}).get("binary_data_size")  # parameters checked by _entries
        if size is not None:
            if header_length is None:
                raise RequestError(400, f"input '{meta.name}' names a binary_data_size but the request has no "
                                        "Inference-Header-Content-Length header")
            if not _count(size) or offset + size > len(body):
                raise RequestError(400, f"input '{meta.name}' binary_data_size {size!r:.60} runs past the body")
            binary, offset = view[offset:offset + size], offset + size
        inputs[meta.name] = _tensor(entry, meta, binary)
    if offset != len(body) and header_length is not None:
        raise RequestError(400, f"the body has {len(body) - offset} bytes after the JSON header that no input's "
                                "binary_data_size accounts for")
    names, binary = _asked_outputs(request, list(outputs), binary_default)
    return InferRequest(inputs, common_rows(inputs, specs), request_id, names, binary)


@dataclass(frozen=True)
class _Layout:
    """What a binary request's JSON header decoded to, less the tensors' bytes: where each input lies
    in the body and the rest of the request."""
    body_length: int
    slices: tuple  # (meta, shape, start, end) per input, in body order
    rows: int
    id: str | None
    outputs: tuple
    binary: tuple

    def request(self, body: bytes) -> InferRequest:
        view = memoryview(body)
        inputs = {meta.name: _finite(np.frombuffer(view[start:end], meta.np_dtype).reshape(shape), meta)
                  for meta, shape, start, end in self.slices}
        return InferRequest(inputs, self.rows, self.id, list(self.outputs), list(self.binary))


class RequestDecoder:
    """decode_infer for one model that decodes each binary request's JSON header once: clients
    (perf_analyzer, Triton's clients, bench) send the same header on every request, so a header seen
    before is not parsed and checked again; its tensors are sliced from the body and checked for
    finite values, as decode_infer does. Anything else (JSON tensors, a header not seen, a body of
    another length) goes through decode_infer, which also gives every refusal its message."""

    HEADERS = 256  # headers remembered per model; later ones are decoded every time
    LONGEST = 4096  # bytes: a longer header (many inputs) is decoded every time

    def __init__(self, specs: list[TensorMeta], outputs: list[TensorMeta]):
        self.specs, self.outputs = list(specs), list(outputs)
        self._layouts: dict[bytes, _Layout] = {}

    def __len__(self) -> int:
        return len(self._layouts)  # headers remembered

    def __call__(self, body: bytes, header_length: int | None) -> InferRequest:
        cacheable = header_length is not None and 0 < header_length <= min(len(body), self.LONGEST)
        head = body[:header_length] if cacheable else b""
        layout = self._layouts.get(head) if cacheable else None
        if layout is not None and layout.body_length == len(body):
            return layout.request(body)
        request = decode_infer(body, header_length, self.specs, self.outputs)
        if cacheable and len(self._layouts) < self.HEADERS:
            layout = _layout(request, self.specs, header_length, len(body))
            if layout is not None:
                self._layouts[head] = layout
        return request


def _layout(request: InferRequest, specs: list[TensorMeta], header_length: int, body_length: int) -> _Layout | None:
    """The layout of a decoded request whose tensors all came from the body's binary part (they fill
    it exactly, in the order decode_infer read them); None when any came from the JSON header."""
    meta_of, slices, start = {m.name: m for m in specs}, [], header_length
    for name, array in request.inputs.items():
        slices.append((meta_of[name], array.shape, start, start + array.nbytes))
        start += array.nbytes
    if start != body_length:
        return None
    return _Layout(body_length, tuple(slices), request.rows, request.id, tuple(request.outputs), tuple(request.binary))


def encode_infer(model: str, request_id: str | None, metas: list[TensorMeta], outputs: list[np.ndarray],
                 binary: list[bool]) -> tuple[bytes, dict[str, str]]:
    """The response body and any extra headers; `binary` says per output whether it goes as bytes."""
    tensors, blobs = [], []
    for meta, out, as_bytes in zip(metas, outputs, binary, strict=True):
        entry = {"name": meta.name, "datatype": meta.datatype, "shape": list(out.shape)}
        if as_bytes:
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
    if not any(binary):
        return head, {}
    return head + b"".join(blobs), {"inference-header-content-length": str(len(head))}


# The client's half, used by bench, the scripts and the tests to speak to any v2 server.
def encode_request(inputs: dict[str, np.ndarray]) -> bytes:
    """A v2 request with JSON tensors."""
    return orjson.dumps({"inputs": [{"name": n, "shape": list(a.shape), "datatype": DATATYPE_OF[str(a.dtype)],
                                     "data": a.ravel()} for n, a in inputs.items()]},
                        option=orjson.OPT_SERIALIZE_NUMPY)


def encode_binary_request(inputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The binary tensor extension: a JSON header naming each input's byte count, the raw bytes
    after it in input order, and binary outputs asked for. Returns the body and its header."""
    header = orjson.dumps({"inputs": [{"name": n, "shape": list(a.shape), "datatype": DATATYPE_OF[str(a.dtype)],
                                       "parameters": {"binary_data_size": a.nbytes}} for n, a in inputs.items()],
                           "parameters": {"binary_data_output": True}})
    body = header + b"".join(np.ascontiguousarray(a).tobytes() for a in inputs.values())
    return body, {"Inference-Header-Content-Length": str(len(header))}


def decode_response(body: bytes) -> dict[str, np.ndarray]:
    """A JSON-tensor v2 response's outputs by name."""
    return {o["name"]: np.asarray(o["data"], DATATYPES[o["datatype"]]).reshape(o["shape"])
            for o in orjson.loads(body)["outputs"]}
