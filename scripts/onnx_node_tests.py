"""ONNX's backend node tests through `workbench compile --target host` (issue #32).

The onnx wheel ships the test cases' code, not their data, so the tests are generated here from
`onnx.backend.test.case.node.collect_testcases()`. One test per operator (default domain), chosen
by a fixed rule and committed in scripts/onnx_node_tests.txt (rerun with --reselect to rebuild it):
the test with the shortest name among those whose inputs are float32 tensors, with integer
(index, shape, axis) inputs allowed, at least one float32 input, outputs float32, int64, int32 or
bool, and no `_expanded` function body. Each model is made as a user's exporter would hand it over:
integer inputs and float inputs of rank 0 or 1 after the first (bounds, scales, pads) become
constants holding the test's values, and where ONNX Runtime cannot load the test's opset (the
wheel's newest), the opset import is the operator's own version, else its earlier ones in turn.

Each test then goes through the same path as `workbench compile --model <test> --target host`
with no options (commands.common.compile_request, compiler.builder.compile_model: the build and
the correctness gate against ONNX Runtime on seeded inputs), and the library is run on the test's
own inputs and compared with ONNX's expected outputs. Outcomes:
  matched    compiled, passed the gate and matched ONNX's expected outputs
  refused    a one-line error (unsupported operator, a TVM failure mapped to one line, the gate)
  mismatch   compiled and passed the gate, but differs from ONNX's expected outputs
  traceback  anything else (a bug of ours)
For every test not built (the gate's refusals were built), stock TVM (from_onnx + tvm.compile)
is tried on the same model, so "stock TVM builds it and we do not" is counted.

    .venv/bin/python scripts/onnx_node_tests.py [--only Gemm,Shape] [--json results.json]
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SELECTION = Path(__file__).with_suffix(".txt")
FLOAT, INT32, INT64, BOOL = 1, 6, 7, 9


def _cases():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        return {c.name: c for c in collect_testcases(None) if c.data_sets and not c.name.endswith("_expanded")}


def _types(values) -> list[int | None]:
    return [v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else None for v in values]


def _eligible(case) -> bool:
    graph = case.model.graph
    if len(graph.node) != 1 or graph.node[0].domain not in ("", "ai.onnx"):
        return False
    ins, outs = _types(graph.input), _types(graph.output)
    return (FLOAT in ins and all(t in (FLOAT, INT32, INT64) for t in ins)
            and all(t in (FLOAT, INT32, INT64, BOOL) for t in outs))


def select(cases: dict) -> list[str]:
    """One test per operator: the eligible one with the shortest name (then alphabetical)."""
    chosen = {}
    for name in sorted(cases, key=lambda n: (len(n), n)):
        op = cases[name].model.graph.node[0].op_type
        if op not in chosen and _eligible(cases[name]):
            chosen[op] = name
    return [chosen[op] for op in sorted(chosen)]


def _as_exported(case):
    """The test model with integer and small trailing float inputs as constants, at the op's opset;
    the inputs still fed, and the expected outputs."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, expected = case.data_sets[0]
    graph, fed = model.graph, {}
    kept = []
    for i, (value, data) in enumerate(zip(list(graph.input), inputs)):
        data = np.asarray(data)
        if data.dtype.kind in "iu" or (i > 0 and data.dtype.kind == "f" and data.ndim <= 1):
            graph.initializer.append(numpy_helper.from_array(data, value.name))
        else:
            kept.append(value)
            fed[value.name] = data
    del graph.input[:]
    graph.input.extend(kept)
    original = (list(model.opset_import), model.ir_version)
    for opset in [None, *_versions(graph.node[0].op_type, original[0])]:  # the test's, then the op's own
        if opset is not None:
            try:
                ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
            except ValueError:  # an opset older than ONNX's IR table
                continue
            del model.opset_import[:]
            model.opset_import.append(helper.make_opsetid("", opset))
            model.ir_version = min(original[1], ir_version)
        if _runtime_loads(model):
            break
    else:
        del model.opset_import[:]
        model.opset_import.extend(original[0])
        model.ir_version = original[1]
    return model, fed, [np.asarray(e) for e in expected]


def _versions(op_type: str, opset_import) -> list[int]:
    """The versions of the operator up to the model's opset, newest first."""
    import onnx

    opset = max((o.version for o in opset_import if o.domain in ("", "ai.onnx")), default=1)
    found = []
    while opset >= 1:
        try:
            version = onnx.defs.get_schema(op_type, opset, "").since_version
        except onnx.defs.SchemaError:
            break
        found.append(version)
        opset = version - 1
    return found


def _runtime_loads(model) -> bool:
    import onnxruntime

    try:
        onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return True
    except Exception:
        return False


def _matches(actual, expected, case) -> str | None:
    """None when every output matches ONNX's expected one at the test's tolerances, else why not."""
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        a = np.asarray(a)
        if a.shape != e.shape:
            return f"output {i} has shape {a.shape}, expected {e.shape}"
        if e.dtype == bool or e.dtype.kind in "iu":
            if not np.array_equal(a.astype(e.dtype), e):
                return f"output {i} differs"
        elif not np.allclose(a, e, rtol=max(case.rtol, 1e-4), atol=max(case.atol, 1e-5), equal_nan=True):
            return f"output {i} differs (max abs error {np.nanmax(np.abs(a - e)):.3g})"
    return None


def _stock_tvm_builds(model) -> bool:
    """Whether TVM alone (from_onnx + tvm.compile, its default pipeline) builds the model."""
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    from workbench.compiler.importer import make_target
    from workbench.targets import get_profile

    try:
        target = make_target(get_profile("host").resolved_target())
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            tvm.compile(from_onnx(model), target=target)
        return True
    except Exception:
        return False


def run_one(case, home: Path) -> dict:
    import onnx

    from workbench.commands.common import compile_request
    from workbench.compiler.builder import compile_model
    from workbench.engines.compiled import CompiledModel
    from workbench.errors import CorrectnessError, WorkbenchError

    model, fed, expected = _as_exported(case)
    path = home / "models" / f"{case.name}.onnx"
    onnx.save(model, path)
    result = {"op": model.graph.node[0].op_type, "test": case.name}
    try:
        request = compile_request(str(path), "host", None, None, home / "build" / case.name, 1e-4, 1e-5)
        manifest = compile_model(request)
        library = request.out_dir / next(iter(manifest["libraries"].values()))["file"]
        actual = CompiledModel(library)([fed[s["name"]] for s in manifest["inputs"]])
        why = _matches(actual, expected, case)
        result.update(outcome="matched" if why is None else "mismatch", detail=why or "",
                      passes=manifest["tuning"].get("lowering", {}).get("passes"))
    except CorrectnessError as exc:
        result.update(outcome="refused", reason="gate", detail=str(exc))
    except WorkbenchError as exc:
        text = str(exc)
        reason = ("unsupported operator" if "does not support operator" in text
                  else "TVM failure" if text.startswith("TVM failed") else "other")
        result.update(outcome="refused", reason=reason, detail=text)
    except Exception as exc:  # noqa: BLE001  a traceback is what this script counts
        result.update(outcome="traceback", detail=f"{type(exc).__name__}: {exc}"[:300],
                      trace=traceback.format_exc()[-2000:])
    if result["outcome"] != "matched" and result.get("reason") != "gate":  # the gate: we built it too
        result["stock_tvm_builds"] = _stock_tvm_builds(model)
    return result


def _table(results: list[dict]) -> str:
    lines = [f"{'operator':<24} {'test':<48} {'outcome':<10} detail"]
    for r in results:
        extra = r.get("reason", "")
        stock = " [stock TVM builds it]" if r.get("stock_tvm_builds") else ""
        detail = f"{extra + ': ' if extra else ''}{r.get('detail', '')}".replace("\n", " ")[:150]
        lines.append(f"{r['op']:<24} {r['test']:<48} {r['outcome']:<10} {detail}{stock}")
    return "\n".join(lines)


def totals(results: list[dict]) -> str:
    n = len(results) or 1
    count = {k: sum(r["outcome"] == k for r in results) for k in ("matched", "refused", "mismatch", "traceback")}
    reasons = {}
    for r in results:
        if r["outcome"] == "refused":
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    worse = [r["op"] for r in results if r["outcome"] != "matched" and r.get("stock_tvm_builds")]
    return (f"{len(results)} operators: {count['matched']} compiled and matched ({count['matched'] / n:.0%}), "
            f"{count['refused']} refused in one line ({', '.join(f'{v} {k}' for k, v in sorted(reasons.items()))}), "
            f"{count['mismatch']} compiled but differ from ONNX's expected outputs, "
            f"{count['traceback']} tracebacks; stock TVM builds {len(worse)} of the ones not matched"
            f"{': ' + ', '.join(worse) if worse else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated operators")
    parser.add_argument("--reselect", action="store_true", help=f"choose the tests again and rewrite {SELECTION.name}")
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()
    cases = _cases()
    if args.reselect or not SELECTION.exists():
        SELECTION.write_text("\n".join(select(cases)) + "\n")
    names = [n for n in SELECTION.read_text().split() if n in cases]
    only = set(args.only.split(",")) if args.only else None
    home = Path(tempfile.mkdtemp(prefix="node-tests-"))
    shutil.copytree(ROOT / "targets", home / "targets")
    (home / "models").mkdir()
    os.environ["WORKBENCH_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    results = []
    for name in names:
        if only and cases[name].model.graph.node[0].op_type not in only:
            continue
        results.append(run_one(cases[name], home))
        r = results[-1]
        print(f"{r['op']:<24} {r['outcome']:<10} {r.get('detail', '')[:110]}", file=sys.stderr, flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(_table(results))
    print()
    print(totals(results))
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
