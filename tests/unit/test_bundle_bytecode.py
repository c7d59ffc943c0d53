"""Bytecode caches in a bundle: the ones a stock Python writes while importing the bundle's runtime
are accepted; anything else under __pycache__ (tampered, junk, another Python's) is refused."""

import importlib.util
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.bundle import BundleError
from workbench.bundle.archive import file_digests, verify_files
from workbench.bundle.bytecode import source_of

TAG = sys.implementation.cache_tag
MODULE = '''"""A module with what bytecode holds: nested code, closures, constants of every kind."""
import os

TABLE = {1: -0.0, "nan": float("nan"), "big": 10 ** 40}


def outer(a, *, b=(1, 2.5, None, b"x", frozenset({"p", "q"}))):
    def inner():
        assert a, "asserts differ at -O"
        return a + len(b)
    return inner


class Thing:
    def method(self):
        return __class__
'''


def _stock_python() -> str:
    """A Python as users have it; this test's own interpreter is the fallback."""
    return shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}") or sys.executable


@pytest.fixture
def bundle(tmp_path) -> tuple[Path, dict]:
    """A runtime/ package and a manifest listing it, before anything imported it."""
    package = tmp_path / "runtime" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""pkg"""\n')
    (package / "mod.py").write_text(MODULE)
    (tmp_path / "model.onnx").write_bytes(b"model")
    manifest = {"files": file_digests(tmp_path), "model": {"file": "model.onnx"}, "libraries": {}, "samples": {}}
    return tmp_path, manifest


def _import_with_stock_python(root: Path, *flags: str) -> None:
    """Import the package as `PYTHONPATH=runtime python -m ...` would, with Python's defaults."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    env["PYTHONPATH"] = str(root / "runtime")
    subprocess.run([_stock_python(), *flags, "-c", "import pkg.mod"], check=True, env=env, cwd=root, timeout=60)


def _cache(root: Path, suffix: str = "") -> Path:
    return root / "runtime" / "pkg" / "__pycache__" / f"mod.{TAG}{suffix}.pyc"


def _refused(root: Path, manifest: dict, *fragments: str) -> None:
    with pytest.raises(BundleError) as caught:
        verify_files(root, manifest, root)
    message = str(caught.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_caches_a_stock_python_writes_on_import_are_accepted(bundle):
    root, manifest = bundle
    _import_with_stock_python(root)
    _import_with_stock_python(root, "-O")
    _import_with_stock_python(root, "-OO")
    assert _cache(root).is_file() and _cache(root, ".opt-1").is_file() and _cache(root, ".opt-2").is_file()
    verify_files(root, manifest, root)  # no error


def _rewrite_code(root: Path, code) -> None:
    """The cache's own header (so only the code differs) with other code marshalled after it."""
    path = _cache(root)
    path.write_bytes(path.read_bytes()[:16] + marshal.dumps(code))


def test_a_cache_compiled_from_other_source_is_refused(bundle):
    root, manifest = bundle
    _import_with_stock_python(root)
    _rewrite_code(root, compile(MODULE.replace("len(b)", "len(b) + 1"), "mod.py", "exec", dont_inherit=True))
    _refused(root, manifest, f"runtime/pkg/__pycache__/mod.{TAG}.pyc does not hold the bytecode of "
                             "runtime/pkg/mod.py")


def test_a_cache_differing_only_where_code_equality_does_not_look_is_refused(bundle):
    """Code objects' == skips the stack size (too small a one crashes the interpreter)."""
    root, manifest = bundle
    _import_with_stock_python(root)
    code = compile(MODULE, "mod.py", "exec", dont_inherit=True)
    tampered = code.replace(co_stacksize=1)
    assert tampered == code  # which is why the cache is compared attribute by attribute
    _rewrite_code(root, tampered)
    _refused(root, manifest, "does not hold the bytecode of runtime/pkg/mod.py")


@pytest.mark.parametrize("name, content, fragment", [
    ("notes.txt", b"hello", "runtime/pkg/__pycache__/notes.txt is not in the manifest"),
    (f"other.{TAG}.pyc", b"x" * 32, f"runtime/pkg/__pycache__/other.{TAG}.pyc is not in the manifest"),
    (f"mod.{TAG}.pyc", importlib.util.MAGIC_NUMBER + b"\0" * 12 + b"junk", "is not a valid bytecode cache"),
    (f"mod.{TAG}.pyc", b"\0\0\0\0" + b"\0" * 12, "written by another build of Python"),
    ("mod.cpython-39.pyc", b"\0" * 32, "written by another Python (cpython-39"),
])
def test_anything_else_in_a_pycache_folder_is_refused(bundle, name, content, fragment):
    root, manifest = bundle
    cache = root / "runtime" / "pkg" / "__pycache__"
    cache.mkdir()
    (cache / name).write_bytes(content)
    _refused(root, manifest, fragment)


def test_cache_names_map_to_their_source():
    assert source_of(f"runtime/a/__pycache__/b.{TAG}.pyc") == "runtime/a/b.py"
    assert source_of(f"runtime/a/__pycache__/b.{TAG}.opt-2.pyc") == "runtime/a/b.py"
    assert source_of(f"__pycache__/b.{TAG}.pyc") == "b.py"
    for path in (f"runtime/a/b.{TAG}.pyc", "runtime/a/__pycache__/b.txt", f"runtime/a/__pycache__/b.{TAG}.opt-3.pyc",
                 "runtime/a/__pycache__/b.pyc"):
        assert source_of(path) is None, path
