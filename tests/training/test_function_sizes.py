"""No function in npnet/training/ is longer than 60 lines of code (docstring, comments and
blank lines not counted): the project's rule, checked here for the training package."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "npnet" / "training"
LIMIT = 60


def code_lines(src_lines, node) -> int:
    """Lines of ``node`` that hold code: not blank, not a comment, not the docstring."""
    skip = set()
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        skip = set(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i in range(node.lineno, node.end_lineno + 1)
               if i not in skip and src_lines[i - 1].strip() and not src_lines[i - 1].strip().startswith("#"))


def test_the_counter_counts():
    src = 'def f():\n    """doc\n    more"""\n    # note\n\n    a = 1\n    return a\n'
    node = ast.parse(src).body[0]
    assert code_lines(src.splitlines(), node) == 3


@pytest.mark.parametrize("path", sorted(PKG.glob("*.py")), ids=lambda p: p.name)
def test_no_function_over_60_lines(path):
    src = path.read_text(encoding="utf-8")
    lines = src.splitlines()
    long = [(n.name, code_lines(lines, n)) for n in ast.walk(ast.parse(src))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(lines, n) > LIMIT]
    assert long == [], f"{path.name}: functions over {LIMIT} lines of code: {long}"
