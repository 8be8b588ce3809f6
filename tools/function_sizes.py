"""List the functions in a source tree by lines of code, longest first.

Lines of code: the lines a function spans (from its ``def`` to its last statement), minus
its docstring, blank lines and lines holding only a comment. This is the count behind the
"no function in npnet/ over 60 lines" rule; tests/test_style.py enforces it.

    python tools/function_sizes.py npnet --over 40
"""
from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path


def _comment_only_lines(source: str) -> set[int]:
    """Line numbers holding nothing but a comment."""
    code_lines, comment_lines = set(), set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comment_lines.add(tok.start[0])
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    return comment_lines - code_lines


def function_sizes(path: Path) -> list[tuple[int, str, int]]:
    """(lines of code, qualified name, first line) for every function in one file."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    comments = _comment_only_lines(source)
    out = []

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = set(range(child.lineno, child.end_lineno + 1))
                body0 = child.body[0]
                if (isinstance(body0, ast.Expr) and isinstance(body0.value, ast.Constant)
                        and isinstance(body0.value.value, str)):
                    span -= set(range(body0.lineno, body0.end_lineno + 1))
                loc = sum(1 for n in span if n not in comments and lines[n - 1].strip())
                out.append((loc, f"{prefix}{child.name}", child.lineno))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
    visit(tree)
    return out


def tree_function_sizes(root: Path) -> list[tuple[int, str]]:
    """(lines of code, "file:line name") for every function under ``root``, longest first."""
    rows = []
    for path in sorted(Path(root).rglob("*.py")):
        rows += [(loc, f"{path}:{line} {name}") for loc, name, line in function_sizes(path)]
    return sorted(rows, reverse=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", nargs="?", default="npnet", help="folder to scan (default: npnet)")
    p.add_argument("--over", type=int, default=60, help="list functions longer than this (default 60)")
    args = p.parse_args(argv)
    for loc, where in tree_function_sizes(Path(args.root)):
        if loc > args.over:
            print(f"{loc:4d}  {where}")


if __name__ == "__main__":
    main()
