"""ModelInferRequest in, ModelInferResponse out: the gRPC half of the Open Inference Protocol v2.

Tensors arrive as raw bytes (`raw_input_contents`, one entry per input, in input order) or typed
(`contents.fp32_contents` and the like); either way they pass the same checks as REST
(protocol.decode_tensor: datatype, shape, byte or element count, range, finite values), so a client
mistake is a RequestError whose status the front end turns into INVALID_ARGUMENT. Outputs go back as
`raw_output_contents`, as Triton answers.
"""

import numpy as np

from workbench.serving.protocol import InferRequest, RequestError, TensorMeta, asked_outputs, common_rows, decode_tensor

# Which InferTensorContents field carries each datatype (FP16 has none: raw only).
CONTENTS_FIELD = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT8": "int_contents", "INT16": "int_contents",
                  "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
                  "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
                  "BOOL": "bool_contents"}


def parameter_value(parameter):
    """An InferParameter's value, whichever of its fields is set."""
    field = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, field) if field else None


def _typed(tensor, meta: TensorMeta) -> dict:
    """A typed-contents tensor as the dict protocol.decode_tensor checks (its data a list of Python values)."""
    filled = [field.name for field, _ in tensor.contents.ListFields()]
    expected = CONTENTS_FIELD.get(meta.datatype)
    if expected is None:
        raise RequestError(400, f"input '{meta.name}' is {meta.datatype}, which has no typed contents field; send it "
                                "in raw_input_contents")
    if filled != [expected]:
        raise RequestError(400, f"input '{meta.name}' ({meta.datatype}) carries its data in contents.{expected}; "
                                f"this request fills {filled or 'no contents field'}")
    return {"datatype": tensor.datatype, "shape": list(tensor.shape), "data": list(getattr(tensor.contents, expected))}


def decode_grpc_infer(request, specs: list[TensorMeta], outputs: list[TensorMeta]) -> InferRequest:
    """A ModelInferRequest's tensors checked against the model's inputs, and the outputs it asks for."""
    tensors, raw = list(request.inputs), list(request.raw_input_contents)
    expected = {m.name for m in specs}
    names = [t.name for t in tensors]
    if set(names) != expected or len(names) != len(specs):
        unknown, missing = sorted(set(names) - expected), sorted(expected - set(names))
        raise RequestError(400, f"inputs must be exactly {sorted(expected)}" +
                           (f"; unknown: {unknown}" if unknown else "") + (f"; missing: {missing}" if missing else "") +
                           (f"; repeated: {names}" if len(names) != len(set(names)) else ""))
    if raw and len(raw) != len(tensors):
        raise RequestError(400, f"raw_input_contents has {len(raw)} entries for {len(tensors)} inputs: when it is "
                                "used, every input's bytes go there, in input order")
    inputs = {}
    for i, tensor in enumerate(tensors):
        meta = next(m for m in specs if m.name == tensor.name)
        if raw:
            entry = {"datatype": tensor.datatype, "shape": list(tensor.shape)}
            if tensor.HasField("contents"):
                raise RequestError(400, f"input '{meta.name}' has typed contents and raw_input_contents; send one")
            inputs[meta.name] = decode_tensor(entry, meta, memoryview(raw[i]))
        else:
            inputs[meta.name] = decode_tensor(_typed(tensor, meta), meta, None)
    asked = [{"name": o.name, "parameters": {k: parameter_value(v) for k, v in o.parameters.items()
                                             if k != "binary_data"}} for o in request.outputs]
    names, _ = asked_outputs({"outputs": asked or None}, outputs, True)
    return InferRequest(inputs, common_rows(inputs, specs), request.id or None, names, [True] * len(names))


def encode_grpc_infer(response_type, model: str, request_id: str | None, metas: list[TensorMeta],
                      arrays: list[np.ndarray]):
    """A ModelInferResponse with every output as raw bytes."""
    response = response_type(model_name=model, model_version="1", id=request_id or "")
    for meta, array in zip(metas, arrays, strict=True):
        response.outputs.add(name=meta.name, datatype=meta.datatype, shape=array.shape)
        response.raw_output_contents.append(np.ascontiguousarray(array).tobytes())
    return response
