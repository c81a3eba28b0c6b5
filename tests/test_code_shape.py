"""Shape rules the code keeps: a function over LONG_FUNCTION lines says why beside it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("edgelstm", "converters", "runtime")
#: A function longer than this (def to last line, docstring included) must carry a
#: ``# long: <reason>`` comment on its ``def`` line or the line above it.
LONG_FUNCTION = 60


def _sources():
    for folder in PACKAGE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not any(part.startswith(".") for part in path.relative_to(ROOT).parts):
                yield path


def long_functions_without_reason(path: Path, source: str) -> list[str]:
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        beside = " ".join(lines[max(0, first - 2): node.lineno])
        if length > LONG_FUNCTION and "# long:" not in beside:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_over_the_limit_without_a_reason():
    found = [hit for path in _sources() for hit in long_functions_without_reason(path, path.read_text())]
    assert found == []


def test_the_rule_sees_a_long_function_and_accepts_a_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(LONG_FUNCTION))
    plain = f"def f():\n{body}\n"
    assert long_functions_without_reason(ROOT / "x.py", plain) == ["x.py:1 f (61 lines)"]
    reasoned = f"# long: one table of constants, read top to bottom\ndef f():\n{body}\n"
    assert long_functions_without_reason(ROOT / "x.py", reasoned) == []
