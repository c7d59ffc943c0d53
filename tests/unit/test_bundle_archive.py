"""An archive is checked in memory before anything is written: each member's size against the
manifest's record (format 2), members the manifest does not list, and a total cap (every format)."""

import copy
import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.helpers import BUNDLE_FILES as FILES
from tests.helpers import VALID_BUNDLE_MANIFEST as VALID
from workbench.bundle import BundleError
from workbench.bundle.archive import file_digests, file_sizes, open_bundle


@pytest.fixture
def nothing_is_written(monkeypatch):
    """Fail the test if opening the archive gets as far as creating a folder or extracting."""
    def refuse(*args, **kwargs):
        raise AssertionError("the archive was being written to disk")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    monkeypatch.setattr(tarfile.TarFile, "extract", refuse)


def _contents(tmp_path: Path, bundle_format: int = 2) -> dict[str, bytes]:
    """The files of a small bundle (not a runnable one) with a manifest recording them."""
    root = tmp_path / "made" / "m-host"
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode() * 3)
    manifest = copy.deepcopy(VALID)
    manifest.update(bundle_format=bundle_format, files=file_digests(root), sizes=file_sizes(root))
    if bundle_format == 1:
        del manifest["sizes"]
    files = {name: (root / name).read_bytes() for name in FILES}
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"m-host/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _refused(archive: Path, *fragments: str, **kwargs) -> None:
    with pytest.raises(BundleError) as caught:
        open_bundle(archive, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_a_member_larger_than_the_manifest_records_is_refused_before_writing(tmp_path, nothing_is_written):
    """A zip bomb in small: a MiB of zeros compresses to a kilobyte."""
    files = _contents(tmp_path)
    files["samples/b1.npz"] = bytes(1 << 20)
    archive = _archive(tmp_path / "bomb.tar.gz", files)
    assert archive.stat().st_size < 10_000
    _refused(archive, "samples/b1.npz is 1,048,576 bytes in the archive but 42 in the manifest",
             "nothing was extracted")


def test_a_member_the_manifest_does_not_list_is_refused_before_writing(tmp_path, nothing_is_written):
    files = _contents(tmp_path)
    files["lib/extra.so"] = b"x"
    _refused(_archive(tmp_path / "extra.tar.gz", files), "lib/extra.so is not in the manifest")


@pytest.mark.parametrize("bundle_format", [1, 2])
def test_an_archive_over_the_total_cap_is_refused_before_writing(tmp_path, nothing_is_written, bundle_format):
    archive = _archive(tmp_path / "big.tar.gz", _contents(tmp_path, bundle_format))
    _refused(archive, "its files hold more than", "nothing was extracted", max_bytes=100)


def test_an_oversized_manifest_is_not_read_into_memory(tmp_path, nothing_is_written, monkeypatch):
    from workbench.bundle import archive as archive_module

    monkeypatch.setattr(archive_module, "MAX_MANIFEST_BYTES", 100)
    _refused(_archive(tmp_path / "m.tar.gz", _contents(tmp_path)), "manifest.json is", "more than a manifest can be")


def test_a_format_1_archive_gets_past_the_size_checks(tmp_path):
    """No sizes recorded: the member checks pass and extraction goes on (this toy bundle then fails
    at its model, which is not ONNX; a real format-1 bundle is opened in test_bundle.py)."""
    files = _contents(tmp_path, bundle_format=1)
    _refused(_archive(tmp_path / "old.tar.gz", files), "ONNX Runtime cannot read the bundled model")
