"""The package stays readable in pieces: no module over 400 lines, no function over 60 (issue #28)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"
MODULE_LINES = 400
FUNCTION_LINES = 60


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_the_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert not long, f"split these modules (over {MODULE_LINES} lines): {long}"


def test_no_function_over_the_limit():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if (n := node.end_lineno - start + 1) > FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = n
    assert not long, f"split these functions (over {FUNCTION_LINES} lines, decorators included): {long}"
