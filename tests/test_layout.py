"""The package's layers: arrows run down only (stages run the method; products and tools use both; never the
other way)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "texdistill"
# a layer → the sub-packages of texdistill it must not import
FORBIDDEN = {"method": ("stages", "products", "tools", "pipeline", "cli", "demo", "registry"),
             # the stages run the method in a run folder (lock, resume, outputs); products and tools use them
             "stages": ("products", "tools", "pipeline", "cli", "demo", "registry"),
             "data": ("method", "stages", "products", "tools", "pipeline", "cli", "demo"),
             "products": ("tools", "pipeline", "cli", "demo", "registry"),
             # the configs and the names they check sit below the method: config.py needs no method code
             "config.py": ("method", "stages", "products", "tools", "pipeline", "cli", "demo", "registry", "commands",
                           "presets"),
             "commands.py": ("method", "stages", "products", "tools", "pipeline", "cli", "demo", "registry"),
             "registry.py": ("method", "stages", "products", "tools", "pipeline", "cli", "demo"),
             "names.py": ("method", "stages", "products", "tools", "config", "options", "data"),
             "options.py": ("method", "stages", "products", "tools", "config", "names", "data")}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in modules if m.startswith("texdistill.")}


@pytest.mark.parametrize("layer", FORBIDDEN)
def test_no_layer_imports_one_above_it(layer):
    paths = [PACKAGE / layer] if layer.endswith(".py") else sorted((PACKAGE / layer).rglob("*.py"))
    for path in paths:
        for module in imported_modules(path):
            top = module.split(".")[1]
            assert top not in FORBIDDEN[layer], f"{path.relative_to(PACKAGE)} imports {module}"


def room(module: str) -> str:
    """The part of the package a module belongs to: a sub-package (method, data, …) or a top-level module; a name
    of the package itself that is no module (`from texdistill import __version__`) is the package's __init__."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    top = parts[1]
    return top if (PACKAGE / top).is_dir() or (PACKAGE / f"{top}.py").exists() else "__init__"


def test_no_import_runs_back_up():  # the parts of the package import each other in one direction only: no loop
    arrows: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        source = relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or relative.name != "__init__.py" \
            else "__init__"
        for module in imported_modules(path):
            if (target := room(module)) != source:
                arrows.setdefault(source, set()).add(target)
    done: set[str] = set()

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert node not in trail, f"imports run in a loop: {' -> '.join((*trail[trail.index(node):], node))}"
        if node not in done:
            for target in sorted(arrows.get(node, ())):
                visit(target, (*trail, node))
            done.add(node)

    for node in sorted(arrows):
        visit(node, ())



def test_modules_stay_small():  # a few hundred lines each: split by concern, not grown
    sizes = {path.relative_to(PACKAGE): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}
