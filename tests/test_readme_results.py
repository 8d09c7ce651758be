"""README's Results table is the rendering of the committed sweep JSON it came from (benchmarks/results.py)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).parents[1]


def results_module():
    spec = importlib.util.spec_from_file_location("results", ROOT / "benchmarks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_results_equal_the_committed_sweep():
    results = results_module()
    sweep = json.loads(results.KEPT.read_text())
    assert results.readme_block((ROOT / "README.md").read_text()) == results.render(sweep)
    spec = json.loads((ROOT / results.SPEC).read_text())
    assert [r["row"] for r in sweep["rows"]] == list(spec["rows"])  # every row of the spec, in its order
    for record in sweep["rows"]:
        tables = [record["result"]["sets"], *record["result"].get("architectures", {}).values()]
        assert all(s["models"] >= 3 for t in tables for s in t.values()), record["row"]  # n ≥ 3 everywhere
