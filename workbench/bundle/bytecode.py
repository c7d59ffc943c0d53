"""Bytecode caches in a bundle: which `__pycache__/*.pyc` files verification may accept.

Python writes `<dir>/__pycache__/<stem>.<cache tag>[.opt-N].pyc` while it imports the bundle's
runtime/, which happens before `serve` or `verify` can check anything, and a deployment must not
depend on a flag or variable the user may forget. Such a file is not in the manifest, so it is
accepted only when it provably holds what this Python compiles from a checksummed source: a
header for this Python and a code object equal, attribute by attribute, to compiling the source
here. Anything else is refused, including a cache written by another Python (which this Python
cannot check). Nothing in a cache is executed here; it is unmarshalled, which Python itself
already does for every cache it imports.
"""

import importlib.util
import marshal
import re
import sys
import types
from pathlib import Path, PurePosixPath

_CACHE_NAME = re.compile(r"(?P<stem>[^.]+)\.(?P<tag>[^.]+)(?:\.opt-(?P<opt>[12]))?\.pyc")
# Every attribute of a code object but co_filename, which only says where it was compiled.
# (Code objects' own == skips co_stacksize and co_qualname, so it is not enough.)
_CODE_FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize",
                "co_flags", "co_firstlineno", "co_code", "co_consts", "co_names", "co_varnames", "co_freevars",
                "co_cellvars", "co_name", "co_qualname", "co_linetable", "co_exceptiontable")
_HEADER_BYTES = 16  # magic, flags, then mtime and size (or a source hash)


def source_of(path: str) -> str | None:
    """The source a bytecode cache is named after (a/__pycache__/b.cpython-311.pyc: a/b.py), else None."""
    p = PurePosixPath(path)
    match = _CACHE_NAME.fullmatch(p.name)
    if match is None or p.parent.name != "__pycache__":
        return None
    return (p.parent.parent / f"{match['stem']}.py").as_posix()


def problem(root: Path, path: str) -> str | None:
    """Why root/path is not the cache this Python compiles from its source, or None when it is.
    The caller has checked that the source (`source_of(path)`) matches its checksum."""
    match = _CACHE_NAME.fullmatch(PurePosixPath(path).name)
    tag = sys.implementation.cache_tag
    if match["tag"] != tag:
        return (f"was written by another Python ({match['tag']}, this is {tag}) and cannot be checked; "
                "delete the __pycache__ folders under runtime/")
    data = (root / path).read_bytes()
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return (f"was written by another build of Python ({tag}) and cannot be checked; "
                "delete the __pycache__ folders under runtime/")
    if len(data) < _HEADER_BYTES or int.from_bytes(data[4:8], "little") not in (0, 1, 3):
        return "is not a valid bytecode cache; the bundle was modified"
    try:
        cached = marshal.loads(data[_HEADER_BYTES:])
    except (EOFError, ValueError, TypeError):
        return "is not a valid bytecode cache; the bundle was modified"
    source_path = source_of(path)
    try:
        compiled = compile((root / source_path).read_bytes(), source_path, "exec", dont_inherit=True,
                           optimize=int(match["opt"] or 0))
    except (SyntaxError, ValueError):
        return f"has a source ({source_path}) that this Python cannot compile"
    if not isinstance(cached, types.CodeType) or _key(cached) != _key(compiled):
        return f"does not hold the bytecode of {source_path}; the bundle was modified"
    return None


def _key(value):
    """A comparable, hashable form of a code object or constant: code attribute by attribute,
    floats by repr (so -0.0 and nan compare exactly), the type named so 1 and True differ."""
    if isinstance(value, types.CodeType):
        return ("code",) + tuple(_key(getattr(value, f)) for f in _CODE_FIELDS)
    if isinstance(value, tuple):
        return ("tuple",) + tuple(_key(v) for v in value)
    if isinstance(value, frozenset):
        return ("frozenset", frozenset(_key(v) for v in value))
    if isinstance(value, (float, complex)):
        return (type(value).__name__, repr(value))
    return (type(value).__name__, value)
