"""A bundle manifest is never trusted: wrong types, paths outside the bundle or not checksummed,
and batch sizes that disagree are each refused in one line naming the field."""

import copy
import json

import pytest

from tests.helpers import SHA
from tests.helpers import VALID_BUNDLE_MANIFEST as VALID
from workbench.bundle import BundleError
from workbench.bundle.manifest import check_consistent, parse


def _changed(change) -> dict:
    manifest = copy.deepcopy(VALID)
    change(manifest)
    return manifest


def _refused(manifest, *fragments: str) -> None:
    with pytest.raises(BundleError) as caught:
        check_consistent(parse(json.dumps(manifest).encode(), "b.tar.gz"), "b.tar.gz")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    for fragment in fragments:
        assert fragment in message, message


def test_a_long_value_is_shortened_and_the_complaint_kept():
    _refused(_changed(lambda m: m.update(inputs="x" * 10_000)), "xxx ... is not of type 'array'")


def test_a_valid_manifest_passes_and_format_1_without_sizes_still_reads():
    check_consistent(parse(json.dumps(VALID).encode(), "b"), "b")
    old = _changed(lambda m: (m.pop("sizes"), m.pop("example_request"), m.update(bundle_format=1)))
    check_consistent(parse(json.dumps(old).encode(), "b"), "b")
    no_inputs = _changed(lambda m: m.update(inputs=[]))  # a model of constants (ONNX's MelWeightMatrix test)
    check_consistent(parse(json.dumps(no_inputs).encode(), "b"), "b")


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(inputs="x"), "manifest.json: inputs: 'x' is not of type 'array'"),
    (lambda m: m.update(outputs=[]), "manifest.json: outputs: [] should be non-empty"),
    (lambda m: m["inputs"][0].update(shape=65), "manifest.json: inputs[0].shape: 65 is not of type 'array'"),
    (lambda m: m["inputs"][0].update(shape=[True, 64]), "manifest.json: inputs[0].shape[0]: True is not valid"),
    (lambda m: m.update(batch_sizes=["1"]), "manifest.json: batch_sizes[0]: '1' is not of type 'integer'"),
    (lambda m: m.update(libraries=[]), "manifest.json: libraries: [] is not of type 'object'"),
    (lambda m: m["libraries"].update({"x": {"file": "lib/m-b1.so"}}), "manifest.json: libraries"),
    (lambda m: m["tolerance"].update(rtol="big"), "manifest.json: tolerance.rtol: 'big' is not of type 'number'"),
    (lambda m: m.update(files={"a": "not a sha"}), "manifest.json: files.a: 'not a sha' does not match"),
    (lambda m: m["requires"].update(cpu_flags="avx2"), "manifest.json: requires.cpu_flags: 'avx2' is not of type"),
    (lambda m: m.pop("sizes"), "manifest.json lacks sizes"),
    (lambda m: (m.pop("name"), m.pop("files")), "manifest.json lacks name, files"),
    (lambda m: m["model"].pop("file"), "manifest.json: model lacks file"),
    (lambda m: m.update(inputs="x" * 10_000), "inputs: 'xxxxx"),  # a long value is cut short, see below
    (lambda m: m.update(bundle_format=True), "bundle format True is not supported"),
    (lambda m: m.update(bundle_format=4), "bundle format 4 is not supported"),
])
def test_a_manifest_of_the_wrong_shape_is_refused_naming_the_field(change, fragment):
    _refused(_changed(change), fragment)


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m["libraries"]["1"].update(file="/tmp/evil.so"), "libraries.1.file '/tmp/evil.so' points outside"),
    (lambda m: m["libraries"]["4"].update(file="../evil.so"), "libraries.4.file '../evil.so' points outside"),
    (lambda m: m["libraries"]["4"].update(file="lib/../../evil.so"), "points outside the bundle"),
    (lambda m: m["model"].update(file="/etc/passwd"), "model.file '/etc/passwd' points outside"),
    (lambda m: m["samples"].update({"1": "../samples/b1.npz"}), "samples.1 '../samples/b1.npz' points outside"),
    (lambda m: m["perf_card"].update(file="./perf.json"), "perf_card.file './perf.json' points outside"),
    (lambda m: m.update(example_request="C:\\request.json"), "example_request 'C:\\request.json' points outside"),
    (lambda m: m["libraries"]["1"].update(file="lib/other.so"),
     "libraries.1.file 'lib/other.so' is not among the checksummed files"),
    (lambda m: (m["files"].update({"/abs.so": SHA}), m["sizes"].update({"/abs.so": 1})),
     "lists '/abs.so', which is not a path inside the bundle"),
    (lambda m: m["sizes"].pop("perf.json"), "records a checksum or a size for perf.json but not both"),
    (lambda m: m.update(batch_sizes=[1, 4, 8]), "batch_sizes are [1, 4, 8] but its libraries are for [1, 4]"),
    (lambda m: m["samples"].pop("4"), "batch_sizes are [1, 4] but its samples are for [1]"),
])
def test_paths_outside_the_bundle_or_unchecksummed_and_disagreeing_batches_are_refused(change, fragment):
    _refused(_changed(change), fragment)


def test_one_reader_for_the_compiled_model_of_a_build_or_a_bundle(tmp_path):
    from workbench.errors import WorkbenchError
    from workbench.manifest import read_compiled

    with pytest.raises(WorkbenchError, match="has no manifest.json; compile the model first"):
        read_compiled(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(VALID))  # a bundle's manifest holds the compiled part
    assert read_compiled(tmp_path)["libraries"]["1"]["file"] == "lib/m-b1.so"
    (tmp_path / "manifest.json").write_text(json.dumps({**VALID, "inputs": "x"}))
    with pytest.raises(WorkbenchError) as refused:
        read_compiled(tmp_path)
    assert "inputs: 'x' is not of type 'array'" in str(refused.value) and "\n" not in str(refused.value)


def test_a_library_without_its_checksum_is_refused_in_one_line():
    manifest = copy.deepcopy(VALID)
    del manifest["libraries"]["1"]["sha256"]
    with pytest.raises(BundleError) as refused:
        parse(json.dumps(manifest).encode(), "b.tar.gz")
    assert "libraries.1 lacks sha256" in str(refused.value) and "\n" not in str(refused.value)
