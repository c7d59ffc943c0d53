"""Which reference records a target reads, and how a build's schedule sources are counted."""

from dataclasses import dataclass, replace

import pytest

from workbench.compiler import reference_records
from workbench.targets import get_profile


@dataclass
class FakeTask:  # only the fields flop_shares reads
    flops: float
    weight: int


def test_family_comes_from_the_profiles_cpu_flags_or_this_cpus():
    assert reference_records.family(get_profile("x86-avx512")) == "x86-64-avx512"
    assert reference_records.family(get_profile("x86-avx2")) == "x86-64-avx2"
    assert reference_records.family(get_profile("aarch64")) is None  # another architecture
    assert reference_records.family(get_profile("cuda")) is None  # a GPU: no CPU records
    host = get_profile("host")
    from workbench.fingerprint import cpu_flags

    flags = cpu_flags()
    expected = ("x86-64-avx512" if {"avx512f", "avx512bw", "avx512vl"} <= flags else
                "x86-64-avx2" if {"avx2", "fma"} <= flags else None)
    assert reference_records.family(host) == expected
    # A custom profile naming an mcpu without the flags it needs: no family is guessed.
    custom = replace(host, target={**host.target, "mcpu": "icelake-server"}, requires_cpu_flags=())
    assert reference_records.family(custom) is None


def test_the_folder_follows_the_override_and_turns_off(monkeypatch, tmp_path):
    monkeypatch.setenv(reference_records.ENV, str(tmp_path))
    profile = get_profile("x86-avx2")
    assert reference_records.folder(profile) == tmp_path / "x86-64-avx2"
    assert reference_records.folder(profile, enabled=False) is None
    assert set(reference_records.FAMILY_PROFILES) == {name for name, _ in reference_records.FAMILIES}


def test_flop_shares_weigh_each_kernel_by_its_calls():
    tasks = [FakeTask(100.0, 1), FakeTask(10.0, 5), FakeTask(50.0, 2)]
    shares = reference_records.flop_shares(tasks, ["reference", "local", "default"])
    assert shares["reference"] == {"kernels": 1, "flops_share": pytest.approx(100 / 250)}
    assert shares["local"]["flops_share"] == pytest.approx(50 / 250)
    assert shares["default"]["kernels"] == 1 and shares["default"]["flops_share"] == pytest.approx(100 / 250)
    line = reference_records.describe_shares(shares, {"family": "x86-64-avx2", "machines": ["AMD EPYC (LLVM znver5)"]})
    assert line == ("Schedules: 1 of 3 kernels (40% of the FLOPs) from reference records x86-64-avx2 (tuned on "
                    "AMD EPYC (LLVM znver5)); 1 (20%) from local tuning; 1 (40%) TVM's default schedules")


def test_records_of_another_architecture_are_told_apart():
    assert reference_records._foreign({"kind": "llvm", "mcpu": "znver4"}) is None
    assert reference_records._foreign({"kind": "llvm", "mtriple": "x86_64-linux-gnu"}) is None
    assert reference_records._foreign({"kind": "llvm", "mtriple": "aarch64-linux-gnu"}) == "aarch64-linux-gnu"
    assert reference_records._foreign({"kind": "cuda", "arch": "sm_90"}) == "cuda"
    with pytest.raises(ValueError):
        reference_records._foreign(["not", "a", "target"])


def test_machines_are_read_from_the_sessions_without_tvm(tmp_path):
    (tmp_path / "sessions.jsonl").write_text(
        '{"machine": {"cpu_model": "AMD EPYC", "cpu_id": {"family": "26"}, "llvm_cpu": "znver5"}}\n'
        "not json\n"
        '{"machine": {"cpu_model": "AMD EPYC", "cpu_id": {"family": "26"}, "llvm_cpu": "znver5"}}\n')
    assert reference_records.machines(tmp_path) == ["AMD EPYC (family 26; LLVM znver5)"]
    assert reference_records.machines(tmp_path / "missing") == []
