"""README's Results table, generated from the sweep that produced it (so every number has its command).

    texdistill sweep benchmarks/sweeps/results.json --out runs/results      # runs every row (resumable)
    python benchmarks/results.py runs/results/sweep.json --write           # README table + the JSON kept beside

`--write` copies the sweep's JSON to benchmarks/results/results.json and replaces the README block between
the results markers with the table rendered from it; `tests/test_readme_results.py` checks that the README
block equals the rendering of the committed JSON. Accuracies are mean ± sample std over n models.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
KEPT = ROOT / "benchmarks" / "results" / "results.json"
SPEC = "benchmarks/sweeps/results.json"
BEGIN = "<!-- results:begin (rendered by benchmarks/results.py from benchmarks/results/results.json) -->"
END = "<!-- results:end -->"


def accuracy(s: dict | None) -> str:
    if not s:
        return ""
    spread = "" if s.get("std") is None else f" ± {100 * s['std']:.1f}"
    return f"{100 * s['mean']:.1f}{spread} % (n = {s['models']})"


def cell(result: dict, name: str) -> str:
    wear = result.get("wear", {}).get(name)
    return accuracy(result["sets"].get(name)) + (f", wear {wear['mean']:.2f}" if wear else "")


def render(sweep: dict) -> str:
    """The markdown table of a sweep.json: one line per row, in the spec's order."""
    describe = sweep["spec"].get("describe", {})
    lines = ["| what | command | distilled | baselines (same pixels) | η end | loss end | distill + eval |",
             "|---|---|---|---|---|---|---|"]
    for record in sweep["rows"]:
        result, row = record["result"], record["row"]
        baselines = " · ".join(f"{name}: {cell(result, name)}" for name in result["sets"] if name != "distilled")
        minutes = (record["distill"]["wall_s"] + record["evaluate"]["wall_s"]) / 60
        lines.append(f"| {describe.get(row, row)} | `texdistill sweep {SPEC} --rows {row}` | "
                     f"**{cell(result, 'distilled')}** | {baselines} | "
                     f"{result['syn_lr']:.3g} | {result['loss']:.3f} | {minutes:.1f} min |")
    for record in sweep["rows"]:
        if record["result"].get("architectures"):
            lines += ["", *cross_architecture(record)]
    experts = "; ".join(f"{t['num_experts']} experts × {t['epochs']} epochs, width {t['width']}: {t['wall_s'] / 60:.1f} min"
                        for t in sweep.get("experts", {}).values())
    return "\n".join(lines) + f"\n\nExperts (shared by rows with the same expert options): {experts}.\n"


def cross_architecture(record: dict) -> list[str]:
    """A row evaluated on other architectures (evaluate --models): sets × architectures."""
    result = record["result"]
    order = record["changes"].get("models", "").split(",")  # the row's --models order (JSON sorts the keys)
    tables = {"convnet": result["sets"], **dict(sorted(result["architectures"].items(),
                                                        key=lambda item: order.index(item[0]) if item[0] in order
                                                        else len(order)))}
    lines = [f"Cross-architecture, row `{record['row']}` (`texdistill sweep {SPEC} --rows {record['row']}`): "
             f"networks of each architecture trained only on each set, real test accuracy; evaluation wall time "
             f"{record['evaluate']['wall_s'] / 60:.0f} min on the 2 cores.", "",
             "| set | " + " | ".join(tables) + " |", "|---|" + "---|" * len(tables)]
    for name in result["sets"]:
        lines.append(f"| {name} | " + " | ".join(accuracy(t.get(name)) for t in tables.values()) + " |")
    return lines


def readme_block(text: str) -> str:
    """The part of README between the results markers."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no results markers ({BEGIN} … {END})")
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, nargs="?", default=KEPT, help="a sweep.json (default: the kept one)")
    parser.add_argument("--write", action="store_true", help="keep the JSON and rewrite README's results block")
    args = parser.parse_args()
    table = render(json.loads(args.sweep.read_text()))
    if not args.write:
        print(table)
        return
    if args.sweep.resolve() != KEPT.resolve():
        KEPT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.sweep, KEPT)
    text = README.read_text()
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + table + text[stop:])
    print(f"README.md results block rewritten from {KEPT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
