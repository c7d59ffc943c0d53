from pathlib import Path

import pytest

from workbench.errors import TargetError
from workbench.targets import get_profile, load_profile, profile_paths

REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets"

VALID = """
name = "p"
description = "d"
device = "cpu"
batch_sizes = [1, 4]
[target]
kind = "llvm"
num-cores = "auto"
[tuning]
total_trials = 10
trials_per_task = 5
"""


def write(tmp_path: Path, text: str, name: str = "p") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_every_shipped_profile_loads():
    names = {load_profile(p).name for p in profile_paths(REPO_TARGETS).values()}
    assert {"host", "x86-avx2", "x86-avx512", "cuda", "cuda-sm80", "cuda-sm90", "aarch64"} <= names


def test_valid_profile_fields(tmp_path):
    profile = load_profile(write(tmp_path, VALID))
    assert profile.batch_sizes == (1, 4)
    assert profile.onnxruntime_providers == ("CPUExecutionProvider",)
    assert profile.total_trials == 10 and profile.trials_per_task == 5
    resolved = profile.resolved_target()
    assert isinstance(resolved["num-cores"], int) and resolved["num-cores"] >= 1


def test_cpu_profiles_tune_with_cold_weights_unless_told_not_to(tmp_path):
    assert load_profile(write(tmp_path, VALID)).cold_weights
    assert not load_profile(write(tmp_path, VALID + "cold_weights = false\n")).cold_weights
    assert not get_profile("cuda", REPO_TARGETS).cold_weights


def test_cuda_profile_names_arch_without_gpu():
    target = get_profile("cuda", REPO_TARGETS).resolved_target()
    assert target["kind"] == "cuda" and target["arch"].startswith("sm_")
    assert target["host"]["kind"] == "llvm"


def test_aarch64_profile_carries_rpc_and_cross_compiler():
    profile = get_profile("aarch64", REPO_TARGETS)
    assert profile.rpc.key == "rpi4" and profile.cross_compiler
    assert profile.runs_here() == (False, "remote device (over RPC)")


@pytest.mark.parametrize("broken, field", [
    (VALID.replace('device = "cpu"', 'device = "tpu"'), "device"),
    (VALID.replace("total_trials = 10", "total_trials = -1"), "tuning.total_trials"),
    (VALID.replace("trials_per_task = 5", 'trials_per_task = "many"'), "tuning.trials_per_task"),
    (VALID.replace('kind = "llvm"', "kind = 3"), "target.kind"),
    (VALID.replace("batch_sizes = [1, 4]", "batch_sizes = [0]"), "batch_sizes"),
    (VALID.replace('description = "d"\n', ""), "description"),
    (VALID.replace("trials_per_task = 5", 'trials_per_task = 5\ncold_weights = "yes"'), "tuning.cold_weights"),
    (VALID.replace('device = "cpu"', 'device = "cuda"') + "cold_weights = true\n", "tuning.cold_weights"),
])
def test_malformed_profile_names_file_and_field(tmp_path, broken, field):
    path = write(tmp_path, broken)
    with pytest.raises(TargetError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


def test_toml_syntax_error_names_file(tmp_path):
    path = write(tmp_path, "name = \n")
    with pytest.raises(TargetError, match="not valid TOML") as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_unknown_target_lists_available():
    with pytest.raises(TargetError) as err:
        get_profile("tpu-v9", REPO_TARGETS)
    assert "unknown target 'tpu-v9'" in str(err.value) and "host" in str(err.value) and "cuda-sm90" in str(err.value)


def test_file_and_name_must_match(tmp_path):
    write(tmp_path, VALID, name="other")
    with pytest.raises(TargetError, match="make them match"):
        get_profile("other", tmp_path)


def test_unknown_auto_field_is_refused(tmp_path):
    profile = load_profile(write(tmp_path, VALID.replace('num-cores = "auto"', 'mtriple = "auto"')))
    with pytest.raises(TargetError, match="'target.mtriple' cannot be \"auto\""):
        profile.resolved_target()
