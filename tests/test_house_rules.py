"""House rules every module of the product keeps: it says what it owns, and it stays short.

Checked in `protos`, `fleetbus`, `imaging`, `site_agent`, `coordinator`, `training` and
`skyfleet` (not in tests or benchmarks):

- every module starts with a docstring;
- a module has at most 400 lines and a function (or method) at most 80, counted from its `def`
  line to its last line;
- unless it says why: the first paragraph of the module's or the function's docstring (the text
  before its first blank line) has a line starting "Long because", e.g.

      def upgrade() -> None:
          \"\"\"Create every table of the first schema.
          Long because a released migration is the schema as shipped: it is never split.\"\"\"

A failure lists every module or function that breaks a rule, with where it is.
"""

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGES = ("protos", "fleetbus", "imaging", "site_agent", "coordinator", "training", "skyfleet")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
EXCUSE = "Long because"


@dataclass(frozen=True)
class Module:
    """One source file: where it is, its lines and its syntax tree."""

    path: str
    lines: int
    tree: ast.Module


@cache
def modules() -> tuple[Module, ...]:
    """Every Python module of the product's packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            relative = str(path.relative_to(REPO_ROOT))
            found.append(Module(relative, len(text.splitlines()), ast.parse(text, relative)))
    return tuple(found)


def says_why_it_is_long(docstring: str | None) -> bool:
    """Whether a docstring's first paragraph has a line starting "Long because"."""
    first_paragraph = (docstring or "").split("\n\n", 1)[0]
    return any(line.strip().startswith(EXCUSE) for line in first_paragraph.splitlines())


def test_the_rules_see_every_package():
    seen = {Path(m.path).parts[0] for m in modules()}
    assert seen == set(PACKAGES)


def test_every_module_starts_with_a_docstring():
    missing = [m.path for m in modules() if not ast.get_docstring(m.tree)]
    assert missing == [], f"modules without a docstring saying what they own: {missing}"


def test_a_module_over_400_lines_says_why():
    long = [
        f"{m.path} ({m.lines} lines)"
        for m in modules()
        if m.lines > MAX_MODULE_LINES and not says_why_it_is_long(ast.get_docstring(m.tree))
    ]
    assert long == [], (
        f"modules over {MAX_MODULE_LINES} lines: split them, or start a line of the docstring's "
        f"first paragraph with '{EXCUSE}': {long}"
    )


def test_a_function_over_80_lines_says_why():
    long = [
        f"{m.path}:{node.lineno} {node.name} ({lines} lines)"
        for m in modules()
        for node in ast.walk(m.tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (lines := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
        and not says_why_it_is_long(ast.get_docstring(node))
    ]
    assert long == [], (
        f"functions over {MAX_FUNCTION_LINES} lines: split them, or start a line of the "
        f"docstring's first paragraph with '{EXCUSE}': {long}"
    )


def test_the_excuse_counts_only_in_the_first_paragraph():
    assert says_why_it_is_long("Create the schema.\nLong because it is the released schema.")
    assert says_why_it_is_long("Long because the whole table is one list.")
    assert not says_why_it_is_long("Create the schema.\n\nLong because it is released.")
    assert not says_why_it_is_long("Not long because of anything.")
    assert not says_why_it_is_long(None)
