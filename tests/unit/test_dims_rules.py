"""--dims (issue #32, item 2): the option's parsing, a model's dynamic non-batch dimensions and
the errors that name them, the variants and their manifest keys, and the batcher batching only
requests of one shape together."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper

from workbench import models
from workbench.dims import Variant, check_dims, parse_dims, symbolic_dims, variants
from workbench.errors import ModelError, WorkbenchError
from workbench.manifest import COMPILED_SCHEMA, library_entry, library_variants, problem
from workbench.serving.batcher import BatchPolicy, BatchQueue


def _model(*inputs):
    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs]
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name, _ in inputs]
    outputs = [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, shape) for name, shape in inputs]
    return helper.make_model(helper.make_graph(nodes, "m", values, outputs),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_parse_dims_keeps_order_sorts_and_dedupes_sizes():
    assert parse_dims("seq=128,64,64") == (("seq", (64, 128)),)
    assert parse_dims("seq=8:width=4,2") == (("seq", (8,)), ("width", (2, 4)))
    assert parse_dims(None) == () and parse_dims(" ") == ()


@pytest.mark.parametrize("text, fragment", [
    ("seq", "name=sizes"), ("=8", "name=sizes"), ("seq=", "positive integers"), ("seq=0", "positive integers"),
    ("seq=-8", "positive integers"), ("seq=8.5", "positive integers"), ("seq=a", "positive integers"),
    ("seq=8:seq=16", "twice"),
])
def test_bad_dims_are_refused(text, fragment):
    with pytest.raises(WorkbenchError, match=fragment):
        parse_dims(text)


def test_symbolic_dims_leave_out_the_batch_wherever_it_appears():
    specs = models.input_specs(_model(("ids", ["batch", "seq"]), ("mask", ["batch", "seq"]),
                                      ("bias", [4, "seq", "batch"])))
    assert symbolic_dims(specs) == {"seq": [("ids", 1), ("mask", 1), ("bias", 1)]}


def test_a_model_with_a_dynamic_dimension_needs_dims_naming_it():
    specs = models.input_specs(_model(("x", ["batch", "seq", 16])))
    with pytest.raises(ModelError, match=r"input 'x' axis 1 is the dynamic dimension 'seq'; pass --dims seq="):
        check_dims(specs, ())
    with pytest.raises(WorkbenchError, match=r"--dims names 'len'.*'seq'"):
        check_dims(specs, (("len", (8,)),))
    check_dims(specs, (("seq", (8,)),))


def test_dims_on_a_model_without_dynamic_dimensions_is_refused():
    with pytest.raises(WorkbenchError, match="dynamic non-batch dimensions: none"):
        check_dims(models.input_specs(_model(("x", ["N", 4]))), (("seq", (8,)),))


def test_an_unnamed_dynamic_dimension_cannot_be_sized():
    model = _model(("x", ["batch", 4]))
    model.graph.input[0].type.tensor_type.shape.dim[1].Clear()
    with pytest.raises(ModelError, match="axis 1 is dynamic and unnamed"):
        check_dims(models.input_specs(model), ())


def test_variants_are_every_combination_and_sample_inputs_take_their_sizes():
    found = variants((1, 4), (("seq", (8, 16)),))
    assert [v.tag for v in found] == ["b1-seq8", "b1-seq16", "b4-seq8", "b4-seq16"]
    assert str(found[1]) == "1, seq 16" and variants((2,)) == [Variant(2)]
    model = _model(("x", ["batch", "seq", 16]))
    assert models.sample_inputs(model, 4, sizes={"seq": 16})["x"].shape == (4, 16, 16)
    with pytest.raises(ModelError, match="pass --dims seq=<sizes>"):
        models.sample_inputs(model, 1)


def test_library_keys_are_batches_without_dims_and_variant_tags_with_them():
    key, entry = library_entry(Variant(4), "m-b4.so", "0" * 64, {"x": [4, 2]})
    assert key == "4" and entry == {"file": "m-b4.so", "sha256": "0" * 64}
    shapes = {"ids": [1, 8], "mask": [1, 8]}
    key, entry = library_entry(Variant(1, (("seq", 8),)), "m.so", "0" * 64, shapes)
    assert key == "b1-seq8" and entry["dims"] == {"seq": 8} and entry["shapes"] == shapes
    manifest = {"target": "llvm", "target_json": {}, "device": "cpu", "batch_sizes": [1],
                "inputs": [{"name": "ids", "dtype": "int64", "shape": ["batch", "seq"]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", "seq"]}],
                "libraries": {key: entry}}
    assert problem(manifest, COMPILED_SCHEMA) is None
    assert library_variants(manifest) == {key: Variant(1, (("seq", 8),))}
    manifest["libraries"]["seq=8"] = entry
    assert problem(manifest, COMPILED_SCHEMA) is not None


def test_a_manifest_mixing_batch_keys_and_variant_tags_is_refused():
    # Each key alone is valid; together the engine would look for shapes a batch entry lacks.
    _, entry = library_entry(Variant(1, (("seq", 8),)), "m.so", "0" * 64, {"ids": [1, 8]})
    manifest = {"target": "llvm", "target_json": {}, "device": "cpu", "batch_sizes": [1, 2],
                "inputs": [{"name": "ids", "dtype": "int64", "shape": ["batch", "seq"]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", "seq"]}],
                "libraries": {"b1-seq8": entry, "2": {"file": "old.so", "sha256": "0" * 64}}}
    why = problem(manifest, COMPILED_SCHEMA)
    assert why is not None and why.startswith("libraries") and "\n" not in why


def test_the_batcher_batches_requests_of_one_shape_only():
    queue = BatchQueue(BatchPolicy(4, 0.01, 16, (1, 2, 4)), clock=lambda: 0.0)
    for name, seq in (("a", 8), ("b", 16), ("c", 8), ("d", 16), ("e", 16)):
        queue.put({"x": np.zeros((1, seq, 2), np.float32)}, 1, handle=name)
    first = queue.take()  # the oldest request's shape
    assert [i.handle for i in first.items] == ["a", "c"] and first.size == 2
    assert first.assemble()["x"].shape == (2, 8, 2)
    second = queue.take()
    assert [i.handle for i in second.items] == ["b", "d", "e"] and second.size == 4
    assert len(queue) == 0 and queue.rows == 0 and queue.wait_s() is None


def test_a_full_batch_of_another_shape_is_due_and_leaves_first():
    queue = BatchQueue(BatchPolicy(2, 10.0, 16), clock=lambda: 0.0)
    queue.put({"x": np.zeros((1, 8), np.float32)}, 1, handle="old")
    assert queue.wait_s() > 0
    for name in ("p", "q"):
        queue.put({"x": np.zeros((1, 16), np.float32)}, 1, handle=name)
    assert queue.wait_s() == 0
    assert [i.handle for i in queue.take().items] == ["p", "q"]
    assert [i.handle for i in queue.take().items] == ["old"]


def test_the_protocol_takes_any_size_of_a_named_dimension_and_checks_the_rest():
    import orjson

    from workbench.serving.protocol import RequestError, TensorMeta, decode_infer

    meta = TensorMeta("x", "float32", ("batch", "seq", 4))
    assert meta.as_v2()["shape"] == [-1, -1, 4]

    def body(shape):
        return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": shape,
                                         "data": [0.0] * int(np.prod(shape))}]})

    assert decode_infer(body([2, 8, 4]), None, [meta], []).inputs["x"].shape == (2, 8, 4)
    with pytest.raises(RequestError, match=r"has shape \[1, 8, 5\]"):
        decode_infer(body([1, 8, 5]), None, [meta], [])
    with pytest.raises(RequestError, match="the model expects"):
        decode_infer(body([1, 8]), None, [meta], [])


def _dims_bundle(change=lambda m: None) -> dict:
    """A format-3 bundle manifest (export --dims seq=8,16 at batch 1), changed by `change`."""
    import copy

    from tests.helpers import SHA, VALID_BUNDLE_MANIFEST

    m = copy.deepcopy(VALID_BUNDLE_MANIFEST)
    files = ["lib/m-b1-seq8.so", "lib/m-b1-seq16.so", "samples/b1-seq8.npz", "samples/b1-seq16.npz",
             "model/m.onnx", "perf.json", "request.json"]
    m.update(bundle_format=3, batch_sizes=[1], dims={"seq": [8, 16]},
             inputs=[{"name": "x", "dtype": "float32", "shape": ["batch", "seq", 4]}],
             libraries={f"b1-seq{s}": {"file": f"lib/m-b1-seq{s}.so", "sha256": SHA, "batch": 1, "dims": {"seq": s},
                                        "shapes": {"x": [1, s, 4]}} for s in (8, 16)},
             samples={f"b1-seq{s}": f"samples/b1-seq{s}.npz" for s in (8, 16)},
             files={f: SHA for f in files}, sizes={f: 10 for f in files})
    change(m)
    return m


def _consistent(manifest: dict) -> None:
    import json

    from workbench.bundle.manifest import check_consistent, parse

    check_consistent(parse(json.dumps(manifest).encode(), "b.tar.gz"), "b.tar.gz")


def test_a_dims_bundle_manifest_is_read_and_its_variants_named():
    manifest = _dims_bundle()
    _consistent(manifest)
    assert sorted(library_variants(manifest).values()) == [Variant(1, (("seq", 8),)), Variant(1, (("seq", 16),))]


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m["samples"].pop("b1-seq16"), "its samples are for ['b1-seq8']"),
    (lambda m: m["libraries"]["b1-seq8"].pop("batch"), "libraries.b1-seq8 lacks batch"),
    (lambda m: m.update(batch_sizes=[1, 2]), "batch_sizes are [1, 2] but its libraries are for [1]"),
    (lambda m: m["libraries"].update({"b1-seq9": m["libraries"].pop("b1-seq8")}),
     "'b1-seq9' holds the library of b1-seq8"),
    (lambda m: m["libraries"].update({"seq8": m["libraries"].pop("b1-seq8")}), "libraries: 'seq8'"),
    (lambda m: m["libraries"].update({"1": m["libraries"].pop("b1-seq8")}), "libraries"),
])
def test_a_modified_dims_bundle_manifest_is_refused(change, fragment):
    from workbench.bundle import BundleError

    with pytest.raises(BundleError, match=re.escape(fragment)):
        _consistent(_dims_bundle(change))


def _build_manifest(name="input_ids:0", dim="seq", sizes=(8, 16)) -> dict:
    """A build manifest as compile writes it for --dims {dim}=8,16 at batch 1, through library_entry."""
    from workbench.manifest import BUILD_DIMS_FORMAT

    libraries = dict(library_entry(v, f"m-{v.tag}.so", "0" * 64, {name: [1, v.sizes[dim], 4]})
                     for v in variants((1,), ((dim, sizes),)))
    return {"format": BUILD_DIMS_FORMAT, "model": "m", "model_sha256": "0" * 64, "target": "llvm",
            "target_json": {}, "device": "cpu", "batch_sizes": [1], "dims": {dim: list(sizes)},
            "inputs": [{"name": name, "dtype": "float32", "shape": ["batch", dim, 4]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", dim, 4]}], "libraries": libraries}


@pytest.mark.parametrize("name, dim", [("input_ids:0", "seq"), ("a;b", "seq"), ("x", "sequence:0"),
                                       ("x", "seq len/2")])
def test_a_build_manifest_of_tf2onnx_style_names_is_valid(name, dim):
    from workbench.manifest import build_problem

    manifest = _build_manifest(name, dim)
    assert build_problem(manifest) is None
    assert len({v.tag for v in library_variants(manifest).values()}) == 2


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(format=1), "libraries: 'b1-seq8' does not match"),
    (lambda m: m["libraries"].update({"2": {"file": "m-b2.so", "sha256": "0" * 64}}), "libraries"),
    (lambda m: m["libraries"].pop("b1-seq16"), "libraries: none for b1-seq16"),
    (lambda m: m["libraries"]["b1-seq16"]["shapes"].update({"input_ids:0": [1, 8, 4]}), "libraries.b1-seq16.shapes"),
    (lambda m: m.pop("dims"), "lacks dims"),
])
def test_a_build_manifest_with_dims_keys_every_library_by_its_variant(change, fragment):
    from workbench.manifest import build_problem

    manifest = _build_manifest()
    change(manifest)
    assert fragment in (build_problem(manifest) or "")


def test_a_dims_bundle_missing_one_combination_is_refused():
    from workbench.bundle import BundleError

    def drop_seq16(m):
        for path in (m["libraries"].pop("b1-seq16")["file"], m["samples"].pop("b1-seq16")):
            m["files"].pop(path), m["sizes"].pop(path)

    with pytest.raises(BundleError, match="libraries: none for b1-seq16"):
        _consistent(_dims_bundle(drop_seq16))


def test_the_batch_name_is_the_batch_on_any_axis_of_any_input():
    model = _model(("x", ["batch", "seq"]), ("bias", [4, "seq", "batch"]))
    assert check_dims(models.input_specs(model), (("seq", (8,)),)) == (("seq", (8,)),)
    inputs = models.sample_inputs(model, 2, sizes={"seq": 8})
    assert inputs["x"].shape == (2, 8) and inputs["bias"].shape == (4, 8, 2)


def test_dims_are_put_in_the_models_order():
    specs = models.input_specs(_model(("x", ["batch", "a", "b"])))
    forward, backward = check_dims(specs, parse_dims("a=1:b=2")), check_dims(specs, parse_dims("b=2:a=1"))
    assert forward == backward == (("a", (1,)), ("b", (2,)))
    assert variants((1,), forward) == variants((1,), backward)


@pytest.mark.parametrize("text", ["seq=²", "seq=8,١٦"])
def test_unicode_digits_are_one_line_not_a_traceback(text):
    with pytest.raises(WorkbenchError, match="positive integers"):
        parse_dims(text)


def test_dims_naming_the_batch_points_at_batch_sizes():
    specs = models.input_specs(_model(("x", ["batch", "seq"])))
    with pytest.raises(
            WorkbenchError, match="'batch', the model's batch dimension; give its sizes with --batch-sizes 8$"):
        check_dims(specs, parse_dims("batch=8:seq=4"))


def test_a_wrong_sample_names_its_variant_and_the_shape_it_should_have(tmp_path):
    from workbench.bundle import BundleError
    from workbench.bundle.archive import Bundle
    from workbench.bundle.serve import load_samples

    manifest = _dims_bundle()
    manifest["outputs"] = [{"name": "y", "dtype": "float32", "shape": ["batch", "seq", 4]}]
    (tmp_path / "samples").mkdir()
    for seq, stored in ((8, 8), (16, 8)):  # the seq-16 sample holds seq-8 arrays
        np.savez(tmp_path / f"samples/b1-seq{seq}.npz", input_0=np.zeros((1, stored, 4), np.float32),
                 output_0=np.zeros((1, stored, 4), np.float32))
    bundle = Bundle(tmp_path, manifest, tmp_path / "b.tar.gz")
    assert load_samples(bundle, 1, "b1-seq8")[0]["x"].shape == (1, 8, 4)
    with pytest.raises(BundleError, match=re.escape("the b1-seq16 sample of 'x' is float32 [1, 8, 4], not float32 "
                                                    "[1, 16, 4]")):
        load_samples(bundle, 1, "b1-seq16")
