"""Every name `workbench models` lists resolves (issue #29, item 8): a file under models/ is listed
by its stem, so `--model <stem>` finds it; a fixed batch is read from the inputs."""

import onnx
import pytest
from onnx import TensorProto, helper

from workbench import models
from workbench.errors import ModelError
from workbench.serving.server import fixed_batch


def _relu(path, batch=1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_every_listed_user_model_resolves_by_its_listed_name(project):
    _relu(project / "models" / "twoin.onnx")
    _relu(project / "models" / "nested" / "deep.onnx")
    listed = {p.stem: p for p in models.user_model_paths()}
    assert set(listed) == {"twoin", "deep"}
    for name, path in listed.items():
        source = models.resolve(name)
        assert source.name == name and source.path.resolve() == path.resolve() and not source.builtin


def test_paths_still_resolve_and_missing_names_say_where_they_looked(project):
    _relu(project / "models" / "twoin.onnx")
    assert models.resolve("twoin.onnx").name == "twoin"
    assert models.resolve(str(project / "models" / "twoin.onnx")).name == "twoin"
    with pytest.raises(ModelError, match="not found.*workbench models"):
        models.resolve("threein")


def test_two_files_listed_by_one_name_are_refused(project):
    _relu(project / "models" / "a" / "same.onnx")
    _relu(project / "models" / "b" / "same.onnx")
    with pytest.raises(ModelError, match="ambiguous"):
        models.resolve("same")


def test_fixed_batch_is_the_inputs_static_first_dimension(project):
    _relu(project / "models" / "four.onnx", batch=4)
    assert models.fixed_batch(models.load(models.resolve("four"))) == 4
    assert models.fixed_batch(models.load(models.resolve("mlp"))) is None
    assert fixed_batch([{"name": "x", "dtype": "float32", "shape": [4, 16]}]) == (4,)
    assert fixed_batch([{"name": "x", "dtype": "float32", "shape": [-1, 16]}]) is None
    assert fixed_batch([{"name": "x", "shape": [4, 16]}, {"name": "m", "shape": [2, 16]}]) is None
