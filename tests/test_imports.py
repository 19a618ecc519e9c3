"""The packages depend on each other only as docs/CONTRACTS.md allows, and the project's
modules import each other without a cycle, counting imports inside functions too (a lazy
import is how a cycle used to be hidden)."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("installation", "table", "kiosk", "config", "capture", "render", "calibration", "inference", "training",
            "storage")


def allowed_edges() -> dict[str, list[str]]:
    """The 'may import' table of docs/CONTRACTS.md: {package: [prefixes]}."""
    text = (ROOT / "docs" / "CONTRACTS.md").read_text()
    text = text.split("## Imports", 1)[1].split("\n## ", 1)[0]
    table = {}
    for package, allowed in re.findall(r"^\| `(\w+)` \| (.+?) \|$", text, flags=re.M):
        table[package] = re.findall(r"`([\w.]+)`", allowed)
    return table


def imports_of(path: Path) -> list[str]:
    """Every module an absolute import in the file names, wherever the import stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            # `from package import module` imports the module too (kept only where one is)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def test_every_package_is_in_the_table():
    assert set(allowed_edges()) == set(PACKAGES)


def test_no_import_runs_against_the_documented_direction():
    table = allowed_edges()
    wrong = []
    for name, path in project_modules().items():
        package = name.split(".")[0]
        for module in imports_of(path):
            target = module.split(".")[0]
            if target not in PACKAGES or target == package:
                continue
            if not any(module == ok or module.startswith(ok + ".") for ok in table[package]):
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "imports against docs/CONTRACTS.md:\n" + "\n".join(wrong)


def test_no_import_cycle():
    modules = project_modules()
    graph = {name: {m for m in imports_of(path) if m in modules and m != name}
             for name, path in modules.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
