"""What the independent judges call the crops of each distilled texture: the three most frequent answers per class.

    python benchmarks/judge_confusion.py RUN [--crops N] [--seed S]

Reads RUN's distilled set and its options (config.json) and takes the judges as `texdistill evaluate` does (the
run's cache, trained there first if missing; judges of an architecture the distillation used left out). Draws
the crops wearability draws (`--wear-crops` random wrap-around crops per canvas with the run's seed, unless
given), and prints per judge and class the share of crops given each of the three most frequent classes: where
wearability is low, what the texture reads as instead. The share of a class's own name is its wearability.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from texdistill.cli import file_values
from texdistill.config import EvalConfig, build_config
from texdistill.data import load_dataset
from texdistill.method.judges import instance_names, judges_for, took_part
from texdistill.method.setfile import load_result


def answer_shares(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K): row k = the share of class k's samples given each class."""
    counts = torch.zeros(num_classes, num_classes)
    counts.index_put_((labels, predicted), torch.ones(len(labels)), accumulate=True)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder with a distilled set")
    parser.add_argument("--crops", type=int, help="random crops per canvas (default: the run's --wear-crops)")
    parser.add_argument("--seed", type=int, help="seed of the crops (default: the run's --seed)")
    args = parser.parse_args()
    cfg = build_config(EvalConfig, {**file_values(str(Path(args.run) / "config.json")), "out": args.run})
    dataset = load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path)
    synthetic, meta, space = load_result(args.run)
    crops = args.crops or cfg.wear_crops
    seed = cfg.seed if args.seed is None else args.seed
    images, labels = synthetic.displayed_samples(space, crops, seed)
    names = dataset.class_names
    print(f"{args.run}: {crops} crops per canvas, seed {seed}; the three most frequent answers per class")
    judges = judges_for(cfg, dataset, torch.device("cpu"), took_part(meta))
    for label, judge in zip(instance_names(judges), judges):  # eval.json's names: "vit-tiny/1", "vit-tiny/2", …
        shares = answer_shares(judge.classify(images), labels, len(names))
        print(f"{label} (test accuracy {100 * judge.test_accuracy:.1f} %)")
        for k, name in enumerate(names):
            top = shares[k].argsort(descending=True)[:3]
            print(f"  {name:<12}" + ", ".join(f"{names[t]} {shares[k, t]:.2f}" for t in top))


if __name__ == "__main__":
    main()
