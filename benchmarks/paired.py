"""Paired differences of study rows over distillation seeds, from a sweep's table (sweep.json).

    python benchmarks/paired.py runs/growth-study/sweep.json rec-fourier-collage rec-pixels-collage

Each row name stands for its seeds: `NAME` (seed 0), `NAME-seed1`, `NAME-seed2`, … For every seed both rows
finished, the difference of their mean accuracies (points); then the mean ± sample std (n − 1) of those
differences over the seeds, n stated — a gain counts when it is larger than its std. Also each row's mean
speckle and worst edge z over its seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics


def seeds_of(rows: list[dict], name: str) -> dict[int, dict]:
    """seed → finished row result of `name` and its `-seedN` variants."""
    found = {}
    for entry in rows:
        row, seed = entry["row"], entry["row"].removeprefix(f"{name}-seed")
        if row == name:
            found[0] = entry.get("result")
        elif seed != row and seed.isdigit():
            found[int(seed)] = entry.get("result")
    return {seed: result for seed, result in found.items() if result and "sets" in result}


def describe(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.1f} (n = 1: ranks nothing)" if values else "no common seeds"
    return f"{statistics.mean(values):+.1f} ± {statistics.stdev(values):.1f} (n = {len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a sweep's sweep.json")
    parser.add_argument("row", help="the row (its seeds: NAME, NAME-seed1, …)")
    parser.add_argument("against", nargs="+", help="rows to pair it with, seed by seed")
    args = parser.parse_args()
    rows = json.load(open(args.sweep))["rows"]
    ours = seeds_of(rows, args.row)
    for name in [args.row, *args.against]:
        results = seeds_of(rows, name)
        accuracy = " / ".join(f"{100 * r['sets']['distilled']['mean']:.1f}" for _, r in sorted(results.items()))
        looks = [r.get("seams", {}).get("distilled", {}) for r in results.values()]
        speckle = [look["speckle"] for look in looks if "speckle" in look]
        edges = [look["edge_z_max"] for look in looks if "edge_z_max" in look]
        wear = [r["wear"]["distilled"]["mean"] for r in results.values() if r.get("wear", {}).get("distilled")]
        print(f"{name}: seeds {sorted(results)}: {accuracy}"
              + (f"; speckle {statistics.mean(speckle):.2f}" if speckle else "")
              + (f"; edge z max {max(edges):.1f}" if edges else "")
              + (f"; wear {statistics.mean(wear):.2f}" if wear else ""))
    for name in args.against:
        theirs = seeds_of(rows, name)
        common = sorted(set(ours) & set(theirs))
        diffs = [100 * (ours[s]["sets"]["distilled"]["mean"] - theirs[s]["sets"]["distilled"]["mean"]) for s in common]
        print(f"{args.row} − {name}, paired over seeds {common}: {describe(diffs)} points")


if __name__ == "__main__":
    main()
