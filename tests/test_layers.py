"""The house rules, read from the source: every import goes down the layers, no import circle, and the README's
layout section names exactly the modules the tree has.

core (pure) < clients, load.driver/load.http (I/O loops; neither imports the other), reporting (the files and
streams every report goes through), targets (a target named once) < emulator (core only) < conformance, load,
preflight (none imports another: what two of them share goes below) < check (the main job, drawing on all three) <
cli, pytest_plugin. Imports under ``if TYPE_CHECKING:`` are type-only and exempt.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PKG = ROOT / "harness"
SYNC_DRIVER = {"harness.load.driver", "harness.load.http", "harness.load.packetclock"}
CLI = {"harness.__main__"}  # starts the command line (harness/cli/: one command in a module of its own)
USERS = {"conformance", "load", "preflight"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def group(module: str) -> str:
    if module in SYNC_DRIVER:
        return "driver"
    if module in CLI:
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "harness"


def imports(path: Path) -> set[str]:
    """harness modules imported by ``path`` (type-only imports left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            base = node.module
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("harness"))
    return {m for m in found if m in MODULES}


BELOW_USERS = {"core", "clients", "driver", "reporting", "targets", "emulator"}
ALLOWED = {
    "core": {"core"},
    "clients": {"core", "clients"},
    "driver": {"core", "driver"},
    "reporting": {"core", "reporting"},
    "targets": {"core", "targets"},
    "emulator": {"core", "emulator"},
    **{g: {*BELOW_USERS, g} for g in USERS},  # never a sibling
    "check": {*BELOW_USERS, *USERS, "check"},
    "cli": {*BELOW_USERS, *USERS, "check", "cli"},
    "pytest_plugin": {*BELOW_USERS, *USERS},
}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "harness"))
def test_imports_go_down_the_layers(module: str) -> None:
    mine = group(module)
    for target in imports(MODULES[module]):
        if target == "harness" or target.startswith("harness.core"):
            theirs = "harness" if target == "harness" else "core"
        else:
            theirs = group(target)
        assert theirs in ALLOWED[mine], f"{module} ({mine}) imports {target} ({theirs})"


def test_no_import_circle() -> None:
    graph = {m: imports(p) - {m} for m, p in MODULES.items()}  # lazy (in-function) imports count too
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(d) :], d]))
            if d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_the_checker_catches_a_bad_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from harness.clients.runpod import RunPodClient\nif TYPE_CHECKING:\n    import harness.cli\n")
    assert imports(bad) == {"harness.clients.runpod"}  # the type-only import is exempt
    assert group("harness.clients.runpod") not in ALLOWED["emulator"]
    assert group("harness.load.driver") not in ALLOWED["clients"] and "clients" not in ALLOWED["driver"]
    assert group("harness.load.report") not in ALLOWED[group("harness.conformance.compare")]  # siblings apart


def test_readme_layout_names_every_module() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout") :]
    layout = layout[: layout.index("\n## ", 1)] if "\n## " in layout[1:] else layout
    for module in set(MODULES) - {"harness"}:
        leaf = module.rsplit(".", 1)[-1]
        assert re.search(rf"\b{re.escape(leaf)}\b", layout), f"README's layout section does not name {module}"


ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 60


def test_the_architecture_page_names_the_layers_this_test_enforces() -> None:
    table = ARCHITECTURE[ARCHITECTURE.index("## Layers") : ARCHITECTURE.index("## The three data paths")]
    named = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert named == set(ALLOWED), f"docs/architecture.md's layer table: {sorted(named ^ set(ALLOWED))}"


def test_every_module_and_function_over_the_size_rules_is_a_named_exception() -> None:
    exceptions = ARCHITECTURE[ARCHITECTURE.index("## Exceptions") :]
    over = []
    for path in MODULES.values():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        if text.count("\n") > MAX_MODULE_LINES and f"`{rel}` (module)" not in exceptions:
            over.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"`{rel}:{node.name}` (function)" not in exceptions:
                    over.append(f"{rel}:{node.name}: {length} lines")
    assert not over, "over the size rules and not named in docs/architecture.md: " + "; ".join(over)


def test_citations_point_inside_the_repository() -> None:
    """Docstrings cite docs/reference/, never a folder beside the checkout; every field report cited is there."""
    reports = (ROOT / "docs" / "reference" / "field-reports.md").read_text(encoding="utf-8")
    outside = "../" + "shared"  # spelled apart: this file names it without citing it
    for path in [*MODULES.values(), *sorted((ROOT / "tests").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        assert outside not in text, f"{path.relative_to(ROOT)} cites {outside}"
        for number in re.findall(r"field reports? (\d{3})", text):
            assert f"## Field report {number}" in reports, f"{path.relative_to(ROOT)}: field report {number}"
