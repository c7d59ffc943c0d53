import numpy as np
import orjson
import pytest

from workbench.serving.protocol import (
    RequestDecoder,
    RequestError,
    TensorMeta,
    decode_infer,
    encode_binary_request,
    encode_infer,
    tensor_metas,
)

SPECS = [TensorMeta("x", "float32", (-1, 3)), TensorMeta("mask", "int64", (-1, 2))]


def tensor(name="x", datatype="FP32", shape=(2, 3), data=None, **extra):
    entry = {"name": name, "datatype": datatype, "shape": list(shape), **extra}
    if data is not None:
        entry["data"] = data
    return entry


X = tensor(data=[1.5, 2, 3, 4, 5, 6])
MASK = tensor("mask", "INT64", (2, 2), [[1, 0], [0, 1]])


def body(*inputs, **fields):
    return orjson.dumps({"inputs": list(inputs), **fields})


def refused(raw, header_length=None, specs=SPECS) -> str:
    with pytest.raises(RequestError) as info:
        decode_infer(raw, header_length, specs)
    assert info.value.status == 400
    return str(info.value)


def test_decode_json_request():
    req = decode_infer(body(X, MASK, id="r1", parameters={"binary_data_output": True}), None, SPECS)
    assert req.rows == 2 and req.id == "r1" and req.binary == []
    assert req.inputs["x"].dtype == np.float32 and req.inputs["x"].shape == (2, 3)
    assert req.inputs["x"].tolist() == [[1.5, 2, 3], [4, 5, 6]]
    assert req.inputs["mask"].dtype == np.int64 and req.inputs["mask"].tolist() == [[1, 0], [0, 1]]


def test_decode_defaults():
    req = decode_infer(body(X, MASK), None, SPECS)
    assert req.id is None and req.outputs == []


@pytest.mark.parametrize("raw, fragment", [
    (b"", "empty body"),
    (b'{"inputs": [', "not valid JSON"),
    (b"{}", '"inputs"'),
    (b'{"inputs": {"x": 1}}', '"inputs"'),
    (b"[1, 2]", '"inputs"'),
])
def test_malformed_requests(raw, fragment):
    assert fragment in refused(raw)


def test_wrong_input_name_lists_unknown_and_missing():
    message = refused(body(X, tensor("maks", "INT64", (2, 2), [1, 0, 0, 1])))
    assert "unknown: ['maks']" in message and "missing: ['mask']" in message


def test_missing_input():
    message = refused(body(X))
    assert "missing: ['mask']" in message and "unknown" not in message


def test_wrong_datatype():
    message = refused(body(tensor(datatype="FP64", data=[0] * 6), MASK))
    assert "'x'" in message and "FP32" in message and "FP64" in message


def test_wrong_non_batch_dimension():
    message = refused(body(tensor(shape=(2, 4), data=[0] * 8), MASK))
    assert "'x'" in message and "[2, 4]" in message and "['batch', 3]" in message


def test_element_count_mismatch():
    message = refused(body(tensor(data=[1, 2, 3, 4, 5]), MASK))
    assert "'x'" in message and "5 elements" in message and "needs 6" in message


def test_different_batch_sizes():
    message = refused(body(X, tensor("mask", "INT64", (1, 2), [1, 0])))
    assert "same batch dimension" in message and "[1, 2]" in message


def test_empty_batch():
    assert "empty batch" in refused(body(tensor(shape=(0, 3), data=[]), tensor("mask", "INT64", (0, 2), [])))


def test_data_that_is_not_numbers():
    assert "not a list of FP32 numbers" in refused(body(tensor(data=["a"] * 6), MASK))


def test_integer_out_of_range_is_a_400():
    assert "'b'" in refused(body(tensor("b", "INT8", (1, 1), [300])), specs=[TensorMeta("b", "int8", (-1, 1))])


def test_missing_data_is_a_400():
    assert '"data"' in refused(body(tensor(shape=(1, 1))), specs=[TensorMeta("x", "float32", (-1, 1))])


def binary_body(x: np.ndarray, declared: int | None = None) -> tuple[bytes, int]:
    raw = x.tobytes()
    entry = tensor(shape=x.shape, parameters={"binary_data_size": len(raw) if declared is None else declared})
    head = body(entry, MASK)
    return head + raw, len(head)


def test_decode_binary_tensor():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    raw, header_length = binary_body(x)
    req = decode_infer(raw, header_length, SPECS)
    assert req.inputs["x"].dtype == np.float32 and np.array_equal(req.inputs["x"], x)
    assert req.inputs["mask"].tolist() == [[1, 0], [0, 1]] and req.rows == 2


def test_binary_size_not_matching_shape():
    raw, header_length = binary_body(np.zeros((2, 3), np.float32), declared=12)
    message = refused(raw, header_length)
    assert "12 binary bytes" in message and "needs 24" in message


def test_binary_size_past_the_body():
    raw, header_length = binary_body(np.zeros((2, 3), np.float32), declared=48)
    assert "runs past the body" in refused(raw, header_length)


@pytest.mark.parametrize("header_length", [0, 10_000])
def test_header_length_outside_the_body(header_length):
    raw, _ = binary_body(np.zeros((2, 3), np.float32))
    assert "Inference-Header-Content-Length" in refused(raw, header_length)


OUT = TensorMeta("probs", "float32", (-1, 2))


def test_encode_json():
    out = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    raw, headers = encode_infer("resnet", "r1", [OUT], [out], binary=[False])
    assert headers == {}
    response = orjson.loads(raw)
    assert response["model_name"] == "resnet" and response["id"] == "r1"
    (entry,) = response["outputs"]
    assert entry["name"] == "probs" and entry["datatype"] == "FP32" and entry["shape"] == [2, 2]
    assert np.array_equal(np.array(entry["data"], np.float32).reshape(entry["shape"]), out)


def test_encode_without_id():
    raw, _ = encode_infer("resnet", None, [OUT], [np.zeros((1, 2), np.float32)], binary=[False])
    assert "id" not in orjson.loads(raw)


def test_encode_binary():
    out = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    raw, headers = encode_infer("resnet", None, [OUT], [out], binary=[True])
    n = int(headers["inference-header-content-length"])
    (entry,) = orjson.loads(raw[:n])["outputs"]
    assert "data" not in entry and entry["parameters"] == {"binary_data_size": out.nbytes}
    assert len(raw) == n + out.nbytes
    assert np.array_equal(np.frombuffer(raw[n:], np.float32).reshape(entry["shape"]), out)


# Hardening: each of these answered 500 (or silently wrong numbers) before.
@pytest.mark.parametrize("raw, fragment", [
    (body({**X, "name": ["x"]}, MASK), '"name" string'),
    (body({**X, "name": {"x": 1}}, MASK), '"name" string'),
    (body(tensor(shape=(True, 3), data=[0] * 3), MASK), "non-negative integers"),
    (body(X, MASK, parameters=[1]), "parameters must be a JSON object"),
    (body(X, MASK, parameters="binary"), "parameters must be a JSON object"),
    (body({**X, "parameters": [1]}, MASK), "input 'x' parameters must be a JSON object"),
    (body(X, MASK, parameters={"binary_data_output": "yes"}), "binary_data_output must be true or false"),
    (body(X, MASK, id=7), '"id" must be a string'),
])
def test_malformed_fields_are_400(raw, fragment):
    assert fragment in refused(raw)


@pytest.mark.parametrize("data, fragment", [
    ([None, 2, 3, 4, 5, 6], "found NoneType"),
    (["nan", 2, 3, 4, 5, 6], "found str"),
    (["1.5", 2, 3, 4, 5, 6], "found str"),
    ([True, 2, 3, 4, 5, 6], "found bool"),
    ([[1, 2, 3], [4, 5]], "found list"),
    ([1e39, 2, 3, 4, 5, 6], "NaN, infinite or outside FP32's range"),
])
def test_non_numbers_and_non_finite_values_are_refused(data, fragment):
    assert fragment in refused(body(tensor(data=data), MASK))


def test_integers_refuse_fractions_and_bools():
    assert "found float" in refused(body(X, tensor("mask", "INT64", (2, 2), [1, 0.5, 0, 1])))
    assert "found bool" in refused(body(X, tensor("mask", "INT64", (2, 2), [True, 0, 0, 1])))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_binary_non_finite_values_are_refused(value):
    x = np.ones((2, 3), np.float32)
    x[1, 2] = value
    raw, header_length = binary_body(x)
    assert "1 value(s) that are NaN, infinite" in refused(raw, header_length)


def test_binary_size_without_the_header_is_refused():
    raw, header_length = binary_body(np.zeros((2, 3), np.float32))
    assert "no Inference-Header-Content-Length" in refused(raw[:header_length], None)


def test_bytes_left_over_after_the_tensors_are_refused():
    raw, header_length = binary_body(np.zeros((2, 3), np.float32))
    assert "4 bytes after the JSON header" in refused(raw + b"\0" * 4, header_length)


@pytest.mark.parametrize("value", ["\u00b2", "1" * 5000, "-1", " 12", "0x10", ""])
def test_header_length_must_be_ascii_digits(value):
    from workbench.serving.protocol import header_length

    with pytest.raises(RequestError) as info:
        header_length(value)
    assert info.value.status == 400 and "byte count" in str(info.value)


OUTS = [TensorMeta("logits", "float32", (-1, 2)), TensorMeta("probs", "float32", (-1, 2))]


def test_requested_outputs_and_per_output_binary():
    raw = body(X, MASK, outputs=[{"name": "probs", "parameters": {"binary_data": True}}, {"name": "logits"}])
    req = decode_infer(raw, None, SPECS, OUTS)
    assert req.outputs == ["probs", "logits"] and req.binary == [True, False]
    everything = decode_infer(body(X, MASK, parameters={"binary_data_output": True}), None, SPECS, OUTS)
    assert everything.outputs == ["logits", "probs"] and everything.binary == [True, True]


@pytest.mark.parametrize("outputs, fragment", [
    ([{"name": "nope"}], "unknown output 'nope'"),
    ([{"name": "probs"}, {"name": "probs"}], "asked for twice"),
    ([{"name": "probs", "parameters": {"binary_data": 1}}], "binary_data must be true or false"),
    ([{"name": "probs", "parameters": {"classification": 2}}], "classification extension is not supported"),
    ([{"name": "probs", "parameters": []}], "output 'probs' parameters must be a JSON object"),
    ({"name": "probs"}, "non-empty list"),
    ([], "non-empty list"),
])
def test_bad_output_requests(outputs, fragment):
    with pytest.raises(RequestError) as info:
        decode_infer(body(X, MASK, outputs=outputs), None, SPECS, OUTS)
    assert info.value.status == 400 and fragment in str(info.value)


def test_encode_mixed_binary_and_json_outputs():
    a, b = np.array([[1.0, 2.0]], np.float32), np.array([[3.0, 4.0]], np.float32)
    raw, headers = encode_infer("m", None, OUTS, [a, b], binary=[False, True])
    n = int(headers["inference-header-content-length"])
    first, second = orjson.loads(raw[:n])["outputs"]
    assert first["data"] == [1.0, 2.0] and "data" not in second
    assert np.frombuffer(raw[n:], np.float32).tolist() == [3.0, 4.0]


def test_a_named_dynamic_dimension_takes_one_size_of_at_least_one_across_the_inputs():
    """A --dims dimension accepts any size at decode (the engine says which it runs), but not
    `seq` 2 on one input and 3 on another, nor 0: ONNX Runtime would fail such a request with a 500."""
    specs = [TensorMeta("ids", "int64", ("batch", "seq")), TensorMeta("mask", "int64", ("batch", "seq"))]
    ids, mask = tensor("ids", "INT64", (1, 2), [[1, 2]]), tensor("mask", "INT64", (1, 2), [[1, 1]])
    assert decode_infer(body(ids, mask), None, specs).rows == 1
    longer = tensor("mask", "INT64", (1, 3), [[1, 1, 1]])
    assert "dimension 'seq' must be one size of at least 1 across the inputs, got [2, 3]" in refused(
        body(ids, longer), specs=specs)
    empty = [tensor("ids", "INT64", (1, 0), [[]]), tensor("mask", "INT64", (1, 0), [[]])]
    assert "got [0]" in refused(body(*empty), specs=specs)


def test_tensor_metas_mark_a_fixed_input_beside_a_batched_one_as_unbatched():
    inputs = [{"name": "x", "dtype": "float32", "shape": [-1, 4]}, {"name": "scale", "dtype": "float32", "shape": [1]}]
    outputs = [{"name": "y", "dtype": "float32", "shape": [-1, 4]}, {"name": "n", "dtype": "int64", "shape": [2]}]
    assert [m.batched for m in tensor_metas(inputs, inputs)] == [True, False]
    assert [m.batched for m in tensor_metas(outputs, inputs)] == [True, False]
    fixed = [{"name": "x", "dtype": "float32", "shape": [4, 16]}]  # a model that fixes its batch: that is the batch
    assert [m.batched for m in tensor_metas(fixed, fixed)] == [True]
    assert tensor_metas(inputs, inputs)[1].as_v2()["shape"] == [1]


def test_an_unbatched_input_sets_no_rows_and_must_have_its_own_shape():
    specs = [TensorMeta("x", "float32", (-1, 3)), TensorMeta("scale", "float32", (1,), batched=False)]
    req = decode_infer(body(X, tensor("scale", shape=(1,), data=[2.0])), None, specs)
    assert req.rows == 2 and req.inputs["scale"].shape == (1,)
    message = refused(body(X, tensor("scale", shape=(2,), data=[2.0, 2.0])), specs=specs)
    assert "input 'scale' has shape [2]; the model expects [1]" in message


def test_a_scalar_input_beside_a_batched_one_is_decoded_not_a_500():
    inputs = [{"name": "x", "dtype": "float32", "shape": [-1, 3]}, {"name": "t", "dtype": "float32", "shape": []}]
    specs = tensor_metas(inputs, inputs)
    assert [m.batched for m in specs] == [True, False]
    req = decode_infer(body(X, tensor("t", shape=(), data=[0.5])), None, specs)
    assert req.rows == 2 and req.inputs["t"].shape == ()
    scalar_only = [{"name": "t", "dtype": "float32", "shape": []}]
    assert decode_infer(body(tensor("t", shape=(), data=[0.5])), None, tensor_metas(scalar_only, scalar_only)).rows == 1


def test_the_decoder_remembers_binary_headers_only():
    """A JSON-tensor request carries its data in the header: never remembered. A binary one is, and a
    request with that header and other tensor bytes decodes to those bytes."""
    decoder = RequestDecoder(SPECS, [])
    decoder(body(X, MASK), None)
    assert len(decoder) == 0
    x, mask = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[1, 0], [0, 1]], np.int64)
    raw, headers = encode_binary_request({"x": x, "mask": mask})
    length = int(headers["Inference-Header-Content-Length"])
    decoder(raw, length)
    assert len(decoder) == 1
    again = decoder(raw[:length] + (x + 1).tobytes() + (mask * 5).tobytes(), length)
    assert len(decoder) == 1 and again.rows == 2
    np.testing.assert_array_equal(again.inputs["x"], x + 1)
    np.testing.assert_array_equal(again.inputs["mask"], mask * 5)
