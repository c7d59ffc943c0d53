"""Serving bundles: a compiled model with everything needed to serve and check it elsewhere.

One directory (or the same directory as a .tar.gz): manifest.json with the sha256 and byte size of
every other file, lib/ (a library per compiled batch size), model/ (the source ONNX file),
samples/ (seeded inputs with ONNX Runtime's outputs, as .npz read without pickle), request.json
(an example v2 request), perf.json (the last bench of these exact libraries), requirements.txt,
Dockerfile, README.md, and runtime/ (the workbench source, so a virtual environment with only
requirements.txt installed can serve the bundle).
"""

from workbench.errors import WorkbenchError
from workbench.manifest import MANIFEST  # noqa: F401  (the same file name as a build's)

FORMAT = 2  # 2: per-file sizes in the manifest ("sizes"), an example request
BUNDLE_DIMS_FORMAT = 3  # 3: a build with --dims, libraries and samples keyed by their variant (b1-seq128)


class BundleError(WorkbenchError):
    """A bundle refused: incomplete, modified, unsafe, or not for this machine."""
