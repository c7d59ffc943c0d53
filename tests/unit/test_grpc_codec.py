"""The gRPC codec on its own: ModelInferRequest messages built with Triton's stubs, checked like REST."""

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from workbench.serving.grpc_codec import decode_grpc_infer, encode_grpc_infer
from workbench.serving.protocol import RequestError, TensorMeta

IDS = [TensorMeta("ids", "int8", ("batch", 3))]
HALF = [TensorMeta("x", "float16", ("batch", 2))]
OUT = [TensorMeta("y", "float32", ("batch", 2)), TensorMeta("z", "int64", ("batch",))]


def _typed(values, name="ids", datatype="INT8", shape=(1, 3)):
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name=name, datatype=datatype, shape=list(shape)).contents.int_contents.extend(values)
    return request


def test_typed_int8_within_range_is_decoded_and_all_outputs_asked():
    decoded = decode_grpc_infer(_typed([-128, 0, 127]), IDS, OUT)
    assert decoded.inputs["ids"].dtype == np.int8 and decoded.inputs["ids"].tolist() == [[-128, 0, 127]]
    assert decoded.rows == 1 and decoded.outputs == ["y", "z"] and decoded.id is None


@pytest.mark.parametrize("request_, specs, fragment", [
    (_typed([0, 0, 128]), IDS, "outside INT8's range"),
    (_typed([0, 0]), IDS, "has 2 elements"),
    (_typed([0, 0, 0], name="x", datatype="FP16", shape=(1, 2)), HALF, "no typed contents field"),
])
def test_typed_mistakes_are_request_errors(request_, specs, fragment):
    with pytest.raises(RequestError, match=fragment) as caught:
        decode_grpc_infer(request_, specs, OUT)
    assert caught.value.status == 400


def test_raw_and_typed_together_and_unknown_outputs_are_refused():
    request = _typed([1, 2, 3])
    request.raw_input_contents.append(np.int8([1, 2, 3]).tobytes())
    with pytest.raises(RequestError, match="typed contents and raw_input_contents"):
        decode_grpc_infer(request, IDS, OUT)
    request = _typed([1, 2, 3])
    request.outputs.add(name="w")
    with pytest.raises(RequestError, match="unknown output 'w'"):
        decode_grpc_infer(request, IDS, OUT)


def test_raw_fp16_round_trips_and_outputs_go_back_raw():
    request = pb.ModelInferRequest(model_name="m", id="r1")
    request.inputs.add(name="x", datatype="FP16", shape=[2, 2])
    request.raw_input_contents.append(np.float16([[1, 2], [3, 4]]).tobytes())
    request.outputs.add(name="z")
    decoded = decode_grpc_infer(request, HALF, OUT)
    assert decoded.inputs["x"].dtype == np.float16 and decoded.outputs == ["z"] and decoded.id == "r1"
    response = encode_grpc_infer(pb.ModelInferResponse, "m", "r1", [OUT[1]], [np.int64([7, 8])])
    assert response.id == "r1" and response.outputs[0].datatype == "INT64" and list(response.outputs[0].shape) == [2]
    assert np.frombuffer(response.raw_output_contents[0], np.int64).tolist() == [7, 8]
