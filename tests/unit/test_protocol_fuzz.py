"""Property-based fuzzing of the v2 decoder: whatever a client sends, the answer is a decoded request
that fits the model or a RequestError with a 4xx status, never another exception (a 500)."""

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.serving.protocol import RequestDecoder, RequestError, TensorMeta, decode_infer, header_length

SPECS = [TensorMeta("x", "float32", (-1, 3)), TensorMeta("ids", "int8", (-1, 2))]
OUTPUTS = [TensorMeta("y", "float32", (-1, 1)), TensorMeta("z", "int64", (-1,))]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
# Near-valid values: the field kinds a client gets slightly wrong, mixed with anything at all.
names = st.sampled_from(["x", "ids", "y", "z", "other"]) | json_values
datatypes = st.sampled_from(["FP32", "INT8", "INT64", "BOOL", "fp32"]) | json_values
shapes = st.lists(st.integers(-1, 4) | st.booleans() | st.floats(0, 3), max_size=3) | json_values
numbers = st.integers(-300, 300) | st.floats(width=32) | st.booleans() | st.none() | st.sampled_from(["nan", "1"])
datas = st.lists(numbers, max_size=12) | st.lists(st.lists(numbers, max_size=3), max_size=4) | json_values
parameters = st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-2, 40) | json_values,
                                                 "binary_data": json_values}) | json_values


@st.composite
def requests(draw):
    entry = st.fixed_dictionaries({"name": names}, optional={"datatype": datatypes, "shape": shapes,
                                                              "data": datas, "parameters": parameters})
    request = draw(st.fixed_dictionaries({"inputs": st.lists(entry, max_size=3) | json_values}, optional={
        "id": json_values, "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": json_values}),
        "outputs": st.lists(st.fixed_dictionaries({"name": names}, optional={"parameters": parameters}),
                            max_size=3) | json_values}))
    return orjson.dumps(request)


def check(body: bytes, length: int | None) -> None:
    try:
        request = decode_infer(body, length, SPECS, OUTPUTS)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and str(exc)
        return
    assert set(request.inputs) == {"x", "ids"}
    for meta in SPECS:
        array = request.inputs[meta.name]
        assert array.dtype == np.dtype(meta.dtype) and array.shape[1:] == meta.shape[1:]
        assert array.shape[0] == request.rows >= 1
        if array.dtype.kind == "f":
            assert np.isfinite(array).all()
    assert set(request.outputs) <= {"y", "z"} and len(request.binary) == len(request.outputs)


@FUZZ
@given(requests())
def test_json_requests_decode_or_get_a_4xx(body):
    check(body, None)


@FUZZ
@given(requests(), st.binary(max_size=64), st.integers(-4, 400) | st.none())
def test_binary_requests_decode_or_get_a_4xx(head, tensors, length):
    check(head + tensors, len(head) if length is None else length)


@FUZZ
@given(st.binary(max_size=200), st.integers(-1, 300) | st.none())
def test_arbitrary_bytes_decode_or_get_a_4xx(body, length):
    check(body, length)


@FUZZ
@given(st.text(max_size=30))
def test_header_length_is_a_byte_count_or_a_400(value):
    try:
        assert header_length(value) >= 0 and value.isascii()
    except RequestError as exc:
        assert exc.status == 400


def outcome(decode, body: bytes, length: int | None):
    """What a decoder makes of a body: the request's fields, or the refusal."""
    try:
        request = decode(body, length)
    except RequestError as exc:
        return exc.status, str(exc)
    return ({n: (a.dtype, a.shape, a.tobytes()) for n, a in request.inputs.items()}, request.rows, request.id,
            request.outputs, request.binary)


@FUZZ
@given(st.integers(1, 3), st.data())
def test_a_remembered_header_decodes_every_body_as_decode_infer_does(rows, data):
    """RequestDecoder skips parsing a binary header it has seen: whatever bytes follow it (NaN among
    them), of the right length or not, the answer is decode_infer's."""
    head = orjson.dumps({"id": "r", "inputs": [
        {"name": "ids", "datatype": "INT8", "shape": [rows, 2], "parameters": {"binary_data_size": rows * 2}},
        {"name": "x", "datatype": "FP32", "shape": [rows, 3], "parameters": {"binary_data_size": rows * 12}}],
        "outputs": [{"name": "z", "parameters": {"binary_data": True}}]})
    decoder = RequestDecoder(SPECS, OUTPUTS)
    decoder(head + bytes(rows * 14), len(head))  # zeros: a valid request, whose header it now remembers
    assert len(decoder) == 1
    size = rows * 14
    tensors = data.draw(st.binary(min_size=size, max_size=size) | st.binary(max_size=64))
    length = data.draw(st.just(len(head)) | st.integers(-1, len(head) + 60) | st.none())
    body = head + tensors
    assert outcome(decoder, body, length) == outcome(lambda b, n: decode_infer(b, n, SPECS, OUTPUTS), body, length)
