"""Open a bundle safely: extract without path traversal or links, verify every checksum, check
that this machine can run the code in it. Nothing in a bundle is unpickled or executed here."""

import json
import platform
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from workbench import fingerprint
from workbench.bundle import FORMAT, MANIFEST
from workbench.errors import WorkbenchError

ARCHIVE_SUFFIX = ".tar.gz"
# What loading, serving and verifying read from a manifest.
REQUIRED_KEYS = ("name", "model", "target", "device", "requires", "inputs", "outputs", "batch_sizes", "libraries",
                 "tolerance", "samples", "files")


class BundleError(WorkbenchError):
    pass


@dataclass
class Bundle:
    root: Path
    manifest: dict
    source: Path  # what the user named: the archive or the directory
    _temporary: Path | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> "Bundle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root but the manifest, by POSIX path relative to root."""
    return {p.relative_to(root).as_posix(): fingerprint.sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p != root / MANIFEST}


def pack(directory: Path, archive: Path) -> None:
    """A .tar.gz whose single top-level folder is the bundle directory; written then renamed."""
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    partial.replace(archive)


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders under one top-level folder, nothing else: no absolute paths, no
    '..', no links, no devices. Checked before anything is written."""
    members = tar.getmembers()
    tops = set()
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise BundleError(f"{archive}: refused, the archive holds an unsafe path '{member.name}'")
        if not (member.isfile() or member.isdir()):
            raise BundleError(f"{archive}: refused, '{member.name}' is a link or special file; bundles hold only "
                              "regular files")
        tops.add(path.parts[0])
    if len(tops) != 1:
        raise BundleError(f"{archive}: not a workbench bundle (expected one top-level folder, found {len(tops)})")
    return members


def _extract(archive: Path) -> tuple[Path, Path]:
    temporary = Path(tempfile.mkdtemp(prefix="workbench-bundle-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _safe_members(tar, archive)
            tar.extractall(temporary, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, BundleError) as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{archive}: cannot read the archive ({exc or type(exc).__name__}); it may be "
                          "truncated or not a .tar.gz, so export it again") from None
    return temporary / PurePosixPath(members[0].name).parts[0], temporary


def _read_manifest(root: Path, source: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{source}: not a workbench bundle (no {MANIFEST}); make one with `workbench export`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{source}: {MANIFEST} is not valid JSON ({exc}); export the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("bundle_format") != FORMAT:
        found = manifest.get("bundle_format") if isinstance(manifest, dict) else None
        raise BundleError(f"{source}: bundle format {found!r} is not supported (this workbench reads format "
                          f"{FORMAT}); export it again with this version")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{source}: {MANIFEST} lacks {', '.join(missing)}; the bundle is damaged, so export it again")
    return manifest


def verify_files(root: Path, manifest: dict, source: Path) -> None:
    links = [p for p in root.rglob("*") if p.is_symlink()]
    if links:
        raise BundleError(f"{source}: refused, {links[0].relative_to(root)} is a symbolic link; bundles hold only "
                          "regular files")
    expected = manifest.get("files", {})
    actual = file_digests(root)
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(f for f in set(expected) & set(actual) if expected[f] != actual[f])
    if missing:
        raise BundleError(f"{source}: refused, {missing[0]} is missing ({len(missing)} file(s) in all); "
                          "the bundle is incomplete, so export it again")
    if changed:
        raise BundleError(f"{source}: refused, the checksum of {changed[0]} does not match the manifest "
                          f"({len(changed)} file(s) in all); the bundle was modified or damaged")
    if extra:
        raise BundleError(f"{source}: refused, {extra[0]} is not in the manifest ({len(extra)} file(s) in all); "
                          "the bundle was modified")


def runs_here(manifest: dict) -> tuple[bool, str]:
    """Whether this machine can run the bundle's libraries, and why not."""
    needs = manifest["requires"]
    if needs["machine"] != platform.machine():
        return False, f"it was built for {needs['machine']} and this machine is {platform.machine()}"
    if needs["device"] == "cuda":
        if not fingerprint.gpus():
            return False, f"it was built for an NVIDIA GPU ({needs.get('gpu_arch')}) and this machine has none"
        return True, ""
    missing = sorted(set(needs["cpu_flags"]) - fingerprint.cpu_flags())
    if missing:
        return False, f"it was built for a CPU with {', '.join(missing)}, which this CPU lacks"
    return True, ""


def open_bundle(path: Path, check_target: bool = True) -> Bundle:
    """A verified bundle from an archive (extracted to a temporary folder, removed on close) or a
    directory. Refused with one line when incomplete, modified, or built for another machine."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"no bundle at {path}; make one with `workbench export --model <model> --target <target>`")
    temporary = None
    if path.is_dir():
        root = path
    elif path.name.endswith(ARCHIVE_SUFFIX) or tarfile.is_tarfile(path):
        root, temporary = _extract(path)
    else:
        raise BundleError(f"{path} is neither a bundle directory nor a {ARCHIVE_SUFFIX} archive")
    try:
        manifest = _read_manifest(root, path)
        verify_files(root, manifest, path)
        if check_target:
            ok, why = runs_here(manifest)
            if not ok:
                raise BundleError(f"{path}: cannot run on this machine: {why}; export the bundle for this "
                                  f"machine's target (e.g. --target host)")
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    return Bundle(root, manifest, path, temporary)
