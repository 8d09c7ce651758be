"""The package's layers: arrows run down only (products and tools use the method, never the other way)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "texdistill"
# a layer → the sub-packages of texdistill it must not import
FORBIDDEN = {"method": ("products", "tools", "pipeline", "cli", "demo"),
             "data": ("method", "products", "tools", "pipeline", "cli", "demo"),
             "products": ("tools", "pipeline", "cli", "demo")}


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
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in imported_modules(path):
            top = module.split(".")[1]
            assert top not in FORBIDDEN[layer], f"{path.relative_to(PACKAGE)} imports {module}"


def test_modules_stay_small():  # a few hundred lines each: split by concern, not grown
    sizes = {path.relative_to(PACKAGE): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}
