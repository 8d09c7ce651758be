"""The repository's scripts (benchmarks/*.py, scripts/*.py: not a package) loaded as modules by the tests."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[1]


def repo_script(path: str) -> ModuleType:
    """The script at `path` (relative to the repository root) as a fresh module, leaving sys.path and sys.modules
    as they are."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark_script(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module."""
    return repo_script(f"benchmarks/{name}.py")
