"""The house's size rules, enforced: no function over 80 lines, no module over 450.

Walks ``src/voicewatch`` with ``ast``. A module is exempt only when its
docstring's first line declares it a data table (a word list, a lexicon, the
initial schema migration), so a growing room shows up here instead of in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "voicewatch"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450
#: A module whose first docstring line starts with this may be any length.
DATA_TABLE_MARK = "Data table"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "static" not in p.parts)


def _is_data_table(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return doc.splitlines()[0].startswith(DATA_TABLE_MARK) if doc else False


def _long_functions(tree: ast.Module) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append((f"{node.name} (line {node.lineno})", length))
    return found


def test_no_function_is_over_80_lines_and_no_module_over_450() -> None:
    problems = []
    for path in _modules():
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        lines = len(text.splitlines())
        if _is_data_table(tree):
            continue
        if lines > MAX_MODULE_LINES:
            problems.append(f"{rel}: {lines} lines (max {MAX_MODULE_LINES})")
        for name, length in _long_functions(tree):
            problems.append(f"{rel}: {name} is {length} lines (max {MAX_FUNCTION_LINES})")
    assert not problems, "\n".join(problems)


def test_the_rule_sees_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    """The checks above can fail: a synthetic long function and module are caught."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f'"""A module."""\n\ndef long():\n{body}\n')
    assert [length for _name, length in _long_functions(tree)] == [MAX_FUNCTION_LINES + 1]
    assert not _is_data_table(tree)
    assert _is_data_table(ast.parse('"""Data table: words."""\n'))
