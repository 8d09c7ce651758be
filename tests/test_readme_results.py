"""README's Results table is the rendering of the committed sweep JSON it came from (benchmarks/results.py)."""

import json
from pathlib import Path

from scripts import benchmark_script

ROOT = Path(__file__).parents[1]


def results_module():
    return benchmark_script("results")


def test_readme_results_equal_the_committed_sweep():
    results = results_module()
    sweep = json.loads(results.KEPT.read_text())
    assert results.readme_block((ROOT / "README.md").read_text()) == results.render(sweep)
    spec = json.loads((ROOT / results.SPEC).read_text())
    assert [r["row"] for r in sweep["rows"]] == list(spec["rows"])  # every row of the spec, in its order
    for record in sweep["rows"]:
        tables = [record["result"]["sets"], *record["result"].get("architectures", {}).values()]
        assert all(s["models"] >= 3 for t in tables for s in t.values()), record["row"]  # n ≥ 3 everywhere
