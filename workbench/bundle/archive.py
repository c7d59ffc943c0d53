"""Open a bundle safely: check an archive's members and its manifest before writing anything
(no path traversal, no links, sizes as the manifest records them, a total cap), extract, verify
every checksum and what the manifest says, check that this machine can run the code in it.
Nothing in a bundle is unpickled or executed here."""

import platform
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from workbench import fingerprint
from workbench.bundle import MANIFEST, BundleError, bytecode
from workbench.bundle import manifest as manifests

ARCHIVE_SUFFIX = ".tar.gz"
# What an archive may unpack to in all, checked on the members' declared sizes before anything is
# written (resnet50's bundle is about 110 MB); and the manifest, which is read into memory.
MAX_BUNDLE_BYTES = 4 << 30
MAX_MANIFEST_BYTES = 16 << 20


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


def _files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p != root / MANIFEST]


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root but the manifest, by POSIX path relative to root."""
    return {p.relative_to(root).as_posix(): fingerprint.sha256_file(p) for p in _files(root)}


def file_sizes(root: Path) -> dict[str, int]:
    """Byte size of every file under root but the manifest, by POSIX path relative to root."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in _files(root)}


def pack(directory: Path, archive: Path) -> None:
    """A .tar.gz whose single top-level folder is the bundle directory; written then renamed."""
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    partial.replace(archive)


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.3g} GiB"


def _inner(member: tarfile.TarInfo) -> str:
    """The member's path inside the bundle folder ('.' for the folder itself)."""
    return PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()


def _safe_members(tar: tarfile.TarFile, archive: Path, max_bytes: int) -> list[tarfile.TarInfo]:
    """Regular files and folders under one top-level folder, nothing else: no absolute paths, no
    '..', no links, no devices, and no more than max_bytes in all. Read header by header, so a
    bomb is refused at its first oversized member without decompressing the rest."""
    members, tops, total = [], set(), 0
    for member in tar:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise BundleError(f"{archive}: refused, the archive holds an unsafe path '{member.name}'")
        if not (member.isfile() or member.isdir()):
            raise BundleError(f"{archive}: refused, '{member.name}' is a link or special file; bundles hold only "
                              "regular files")
        total += member.size if member.isfile() else 0
        if total > max_bytes:
            raise BundleError(f"{archive}: refused, its files hold more than {_gib(max_bytes)}, the most a bundle "
                              "may unpack to; nothing was extracted")
        tops.add(path.parts[0])
        members.append(member)
    if len(tops) != 1:
        raise BundleError(f"{archive}: not a workbench bundle (expected one top-level folder, found {len(tops)})")
    return members


def _archived_manifest(tar: tarfile.TarFile, members: list[tarfile.TarInfo], archive: Path) -> dict:
    """The manifest read from the archive into memory (the last copy, as extraction would leave it)."""
    entry = next((m for m in reversed(members) if m.isfile() and _inner(m) == MANIFEST), None)
    if entry is None:
        raise BundleError(f"{archive}: not a workbench bundle (no {MANIFEST}); make one with `workbench export`")
    if entry.size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{archive}: refused, its {MANIFEST} is {entry.size:,} bytes, more than a manifest "
                          f"can be ({MAX_MANIFEST_BYTES:,}); the bundle was modified")
    manifest = manifests.parse(tar.extractfile(entry).read(), archive)
    manifests.check_consistent(manifest, archive)
    return manifest


def _check_sizes(members: list[tarfile.TarInfo], manifest: dict, archive: Path) -> None:
    """Every file member is as large as the manifest records (format 2 on), so nothing larger
    than the bundle that was exported is ever written. A bytecode cache is not in the manifest;
    its size counts towards the total cap, and verification checks its content."""
    sizes = manifest.get("sizes")
    if sizes is None:
        return
    for member in members:
        inner = _inner(member)
        if not member.isfile() or inner == MANIFEST:
            continue
        if inner in sizes:
            if member.size != sizes[inner]:
                raise BundleError(f"{archive}: refused, {inner} is {member.size:,} bytes in the archive but "
                                  f"{sizes[inner]:,} in the manifest; the bundle was modified, nothing was extracted")
        elif bytecode.source_of(inner) not in sizes:
            raise BundleError(f"{archive}: refused, {inner} is not in the manifest; the bundle was modified, "
                              "nothing was extracted")


def _extract(archive: Path, max_bytes: int) -> tuple[Path, Path, dict]:
    """The extracted bundle folder, the temporary folder holding it, and the manifest; the members
    and the manifest are checked in memory first."""
    temporary = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _safe_members(tar, archive, max_bytes)
            manifest = _archived_manifest(tar, members, archive)
            _check_sizes(members, manifest, archive)
            temporary = Path(tempfile.mkdtemp(prefix="workbench-bundle-"))
            tar.extractall(temporary, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, BundleError) as exc:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{archive}: cannot read the archive ({exc or type(exc).__name__}); it may be "
                          "truncated or not a .tar.gz, so export it again") from None
    return temporary / PurePosixPath(members[0].name).parts[0], temporary, manifest


def _read_manifest(root: Path, source: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{source}: not a workbench bundle (no {MANIFEST}); make one with `workbench export`")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{source}: refused, its {MANIFEST} is larger than a manifest can be "
                          f"({MAX_MANIFEST_BYTES:,} bytes); the bundle was modified")
    manifest = manifests.parse(path.read_bytes(), source)
    manifests.check_consistent(manifest, source)
    return manifest


def verify_files(root: Path, manifest: dict, source: Path) -> None:
    """Every file in the manifest present with its checksum, and no other file but bytecode caches
    this Python compiled from those sources (see bytecode.py)."""
    links = [p for p in root.rglob("*") if p.is_symlink()]
    if links:
        raise BundleError(f"{source}: refused, {links[0].relative_to(root)} is a symbolic link; bundles hold only "
                          "regular files")
    expected = manifest["files"]
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
    unknown = [f for f in extra if bytecode.source_of(f) not in expected]
    if unknown:
        raise BundleError(f"{source}: refused, {unknown[0]} is not in the manifest ({len(unknown)} file(s) in all); "
                          "the bundle was modified")
    for cache in extra:
        why = bytecode.problem(root, cache)
        if why:
            raise BundleError(f"{source}: refused, {cache} {why}")
    for path in manifests.named_paths(manifest).values():  # also no link above them, none outside
        if not (root / path).resolve().is_relative_to(root.resolve()):
            raise BundleError(f"{source}: refused, {path} resolves outside the bundle")


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


def open_bundle(path: Path, check_target: bool = True, max_bytes: int = MAX_BUNDLE_BYTES) -> Bundle:
    """A verified bundle from an archive (extracted to a temporary folder, removed on close) or a
    directory. Refused with one line when incomplete, modified, larger than max_bytes unpacked,
    inconsistent with its model, or built for another machine."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"no bundle at {path}; make one with `workbench export --model <model> --target <target>`")
    temporary = None
    if path.is_dir():
        root = path
    elif path.name.endswith(ARCHIVE_SUFFIX) or tarfile.is_tarfile(path):
        root, temporary, manifest = _extract(path, max_bytes)
    else:
        raise BundleError(f"{path} is neither a bundle directory nor a {ARCHIVE_SUFFIX} archive")
    try:
        if temporary is None:
            manifest = _read_manifest(root, path)
        verify_files(root, manifest, path)
        manifests.check_signature(manifest, root, path)
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
