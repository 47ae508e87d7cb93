"""No function in `bert_jax/` or `input_pipeline/` is over 80 lines unless it says why it reads
better whole (the project's style rule, checked on the source with `ast`, nothing imported).

A function's length runs from its `def` line to its last line, docstring and comments included
(decorators not). The reason is a comment containing "reads better whole" placed before the first
statement of the body that follows the docstring, e.g.

    def run_pipeline(...):
        \"\"\"...\"\"\"
        # Reads better whole: the steps share the staging directory and read top to bottom.
        ...
"""

import ast
import io
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bert_jax", "input_pipeline")
MAX_LINES = 80
MARKER = "reads better whole"


def _has_marker(node: ast.FunctionDef | ast.AsyncFunctionDef, comments: dict[int, str]) -> bool:
    body = node.body
    has_docstring = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                     and isinstance(body[0].value.value, str))
    first = body[1] if has_docstring and len(body) > 1 else body[0]
    return any(MARKER in comments.get(line, "").lower() for line in range(node.lineno, first.lineno + 1))


def long_functions(source: str) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of each function in `source` over MAX_LINES lines
    without the marker comment."""
    comments = {token.start[0]: token.string
                for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}."
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = child.end_lineno - child.lineno + 1
                if length > MAX_LINES and not _has_marker(child, comments):
                    found.append((name[:-1], child.lineno, length))
            visit(child, name)

    visit(ast.parse(source), "")
    return found


def test_the_checker_finds_a_long_function_and_honours_the_marker():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    long = f'def f():\n    """Doc."""\n{body}'
    assert long_functions(long) == [("f", 1, MAX_LINES + 2)]
    marked = f'def f():\n    """Doc."""\n    # Reads better whole: one table.\n{body}'
    assert long_functions(marked) == []
    nested = f"class C:\n    def m(self):\n        def inner():\n{body.replace('    ', '            ')}"
    assert [name for name, _, _ in long_functions(nested)] == ["C.m", "C.m.inner"]
    short = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))
    assert long_functions(f"def f():\n{short}") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_over_80_lines_without_saying_why(package):
    offenders = [f"{path.relative_to(REPO)}:{line} {name} ({length} lines)"
                 for path in sorted((REPO / package).rglob("*.py"))
                 for name, line, length in long_functions(path.read_text(encoding="utf-8"))]
    assert not offenders, (
        f"functions over {MAX_LINES} lines: split them where the pieces have names, or put a "
        f"comment containing {MARKER!r} before the body's first statement saying why:\n"
        + "\n".join(offenders))
