"""TVM's internal failures as one line a user can act on.

TVM raises its own errors with C++ check text ("Check failed: (res != std::string::npos) is false:
Invalid SLayout ...") that names neither the ONNX operator nor a way out. Here the failure becomes
one line: the stage, the operator (or kernel) involved, TVM's message shortened, and what to try
(another opset, --no-layout-pass, or a report to TVM with a one-node model cut out of this one by
onnx.utils.Extractor). TVM's full text goes to a log file, whose path the line ends with.
"""

import re
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

from workbench.errors import ModelError

_MODEL: ContextVar = ContextVar("workbench_model", default=None)  # the ONNX model being compiled
_FRONTEND = f"{Path('relax', 'frontend', 'onnx')}"
_KERNEL = re.compile(r"\b(fused_\w+|winograd_\w+|relax\.[a-z_.0-9]+)")
_NOISE = re.compile(r"^(Traceback|\s|File \"|  File|\d+: |During handling|The above exception)")
STAGES = {"import": "import the model", "lower": "lower the model", "split": "split the model into kernels",
          "build": "build the model"}


@contextmanager
def compiling(model):
    """Name `model` (an onnx.ModelProto) as the one whose failures are being explained."""
    token = _MODEL.set(model)
    try:
        yield
    finally:
        _MODEL.reset(token)


def tvm_message(exc: BaseException) -> str:
    """TVM's own sentence: the line after "Check failed:" or the last line that is not a frame."""
    if isinstance(exc, KeyError):  # a converter looking up an attribute the node does not have
        return f"the converter expects {exc} (an attribute or input this node lacks)"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not _NOISE.match(line)]
    for line in lines:
        if "Check failed" in line or "Error:" in line:
            return re.sub(r"^.*?(Check failed:|\w*Error:)\s*", "", line)[:200]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _importer_node(exc: BaseException) -> tuple[str | None, object]:
    """(the ONNX operator whose converter raised, its node when the importer's frame holds it), from
    the traceback of TVM's importer: a model has many Reshapes, and the report needs the one that failed."""
    found, failing = None, None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if _FRONTEND not in frame.f_code.co_filename:
            continue
        node = frame.f_locals.get("node")
        if hasattr(node, "op_type"):
            found, failing = node.op_type, node
        cls = frame.f_locals.get("cls")
        if isinstance(cls, type) and found is None:
            found = cls.__name__
    return found, failing


def _raised_by_ours(exc: BaseException) -> bool:
    frames = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(exc.__traceback__)]
    return bool(frames) and Path(frames[-1]).name in ("converters.py", "recurrent.py") and "workbench" in frames[-1]


def _culprit(exc: BaseException, model, stage: str) -> tuple[str | None, str | None, object]:
    """(the ONNX operator, the kernel or Relax operator, the failing node) the failure names, each
    None when unknown."""
    text = str(exc)
    kernel = next(iter(_KERNEL.findall(text)), None)
    operator, node = _importer_node(exc) if stage == "import" else (None, None)
    if operator is None and model is not None:
        types = list(dict.fromkeys(n.op_type for n in model.graph.node))
        squashed = re.sub(r"[^a-z0-9]", "", (kernel or text).lower())
        named = [t for t in types if t.lower() in squashed]
        operator = max(named, key=len) if named else (types[0] if len(types) == 1 else None)
    return operator, kernel, node


def _one_node_model(model, operator: str, directory: Path, stamp: str, failing=None) -> Path | None:
    """The failing node (else the first node of this operator) cut out as its own model
    (onnx.utils.Extractor), for a report."""
    import onnx
    from onnx.utils import Extractor

    if failing is not None:
        node = next((n for n in model.graph.node if n.output == failing.output), None)
    else:
        node = next((n for n in model.graph.node if n.op_type == operator), None)
    if node is None:
        return None
    constants = {t.name for t in model.graph.initializer}
    try:
        one = Extractor(model).extract_model([i for i in node.input if i and i not in constants],
                                             [o for o in node.output if o])
        path = directory / f"{stamp}-{operator}.onnx"
        onnx.save(one, path)
        return path
    except Exception:  # the cut is a courtesy: a graph it cannot cut still gets its message
        return None


def _log(stage: str, exc: BaseException, stamp: str, printed: str) -> tuple[Path, Path] | tuple[None, None]:
    from workbench.paths import build_dir

    directory = build_dir() / "logs"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stamp}-tvm-{stage}.log"
        path.write_text(printed + "".join(traceback.format_exception(exc)) + "\n" + str(exc) + "\n")
    except OSError:
        return None, None
    return path, directory


def tvm_failure(stage: str, exc: BaseException, batch=None, printed: str = "") -> ModelError:
    """The one-line error for TVM failing at `stage` (import, lower, split, build); `batch` is a batch
    size or a dims.Variant ("1, seq 128"), written after "at batch"."""
    model = _MODEL.get()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    operator, kernel, node = _culprit(exc, model, stage)
    log, directory = _log(stage, exc, stamp, printed)
    cut = _one_node_model(model, operator, directory, stamp, node) if operator and model and directory else None
    where = f" at operator {operator}" if operator else ""
    where += f" (node '{node.name}')" if node is not None and node.name else ""
    where += f" (kernel {kernel})" if kernel and kernel.lower() != f"relax.{(operator or '').lower()}" else ""
    at_batch = f" at batch {batch}" if batch is not None else ""
    if _raised_by_ours(exc):  # compiler/converters.py, recurrent.py: a form of the operator we do not convert
        return ModelError(f"workbench's converter{where} does not take this model{at_batch}: {tvm_message(exc)}; "
                          "try: export the model with another opset or without that form of the operator")
    tries = ["export the model with another opset"]
    if stage != "import":
        tries.append("pass --no-layout-pass")
    tries.append(f"report it to Apache TVM with {cut}" if cut else "report it to Apache TVM")
    full = f"; TVM's full message: {log}" if log else ""
    return ModelError(f"TVM failed to {STAGES.get(stage, stage)}{at_batch}{where}: {tvm_message(exc)}; "
                      f"try: {', or '.join(tries)}{full}")
