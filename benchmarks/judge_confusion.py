"""What the independent judges call the crops of each distilled texture: the three most frequent answers per class.

    python benchmarks/judge_confusion.py RUN [--crops 400]

Reads RUN's distilled set and its options (config.json), takes the judges as `texdistill evaluate` does (from
the run's cache, trained there first if missing), draws `crops` random wrap-around crops per canvas (seed 0), and prints per class and judge the
share of crops given each of the three most frequent classes: where wearability is low, what the texture reads
as instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from texdistill.cli import file_values
from texdistill.config import EvalConfig, build_config
from texdistill.data import load_dataset
from texdistill.method.evaluate import judges_for
from texdistill.method.setfile import load_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder with a distilled texture set")
    parser.add_argument("--crops", type=int, default=400, help="random crops per canvas")
    args = parser.parse_args()
    cfg = build_config(EvalConfig, {**file_values(str(Path(args.run) / "config.json")), "out": args.run})
    dataset = load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path)
    synthetic, _, space = load_result(args.run)
    names = dataset.class_names
    images, labels = synthetic.displayed_samples(space, args.crops, 0)
    for judge in judges_for(cfg, dataset, torch.device("cpu")):
        predicted = judge.classify(images)
        print(f"{judge.name} (test accuracy {100 * judge.test_accuracy:.1f} %)")
        for k, name in enumerate(names):
            shares = torch.bincount(predicted[labels == k], minlength=len(names)).float() / int((labels == k).sum())
            top = shares.argsort(descending=True)[:3]
            print(f"  {name:<12}" + ", ".join(f"{names[t]} {shares[t]:.2f}" for t in top))

if __name__ == "__main__":
    main()
