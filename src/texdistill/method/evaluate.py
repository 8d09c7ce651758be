"""Evaluation: train fresh networks only on a synthetic set, their accuracy on real images; the set's look.

What a run's evaluation does with these (which sets and judges, eval.json, resuming it) is the stage's:
stages/evaluate.py.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import EvalConfig
from texdistill.data import ImageDataset, PixelSpace
from texdistill.method import architectures
from texdistill.method.augment import dsa_of
from texdistill.method.models import ModelSpec
from texdistill.method.synthetic import SyntheticSet
from texdistill.method.torus import VISIBLE, high_frequency_share, seam_metrics
from texdistill.method.training import random_seed, sgd_step, top1_accuracy

SPECKLE_CROPS = 64  # samples per class whose spectra measure speckle (and real images per class, the reference)


def fresh_model(architecture: str, spec: ModelSpec) -> torch.nn.Module:
    """A fresh network: the distillation's ConvNet (`convnet`: exactly `spec`), or another architecture for its data."""
    if architecture == "convnet":
        return spec.build()
    return architectures.build(architecture, spec.channels, spec.num_classes, spec.height, spec.width, spec.depth)


def train_on_synthetic(synthetic: SyntheticSet, spec: ModelSpec, lr: float, cfg: EvalConfig, seed: int,
                       device: torch.device, progress: tqdm | None = None,
                       architecture: str = "convnet") -> torch.nn.Module:
    """A fresh network trained for cfg.eval_epochs on synthetic samples (fresh crops every epoch for textures)."""
    torch.manual_seed(seed)
    model = fresh_model(architecture, spec).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.eval_momentum,
                                weight_decay=cfg.eval_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    k = synthetic.num_classes
    per_class = max(1, min(synthetic.epoch_size, cfg.eval_batch) // k)
    batches = math.ceil(synthetic.epoch_size / (per_class * k))
    synthetic = synthetic.to(device)
    for epoch in range(cfg.eval_epochs):
        if epoch == cfg.eval_epochs // 2:
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.1
        for _ in range(batches):
            with torch.no_grad():
                x, y = synthetic.sample(random_seed(generator), per_class)
            sgd_step(model, optimizer, x, y, dsa_of(cfg), random_seed(generator))
        if progress is not None:
            progress.update(1)
    return model


def model_seed(cfg: EvalConfig, index: int) -> int:
    """Seed of the index-th evaluation model; its set (a random baseline) is drawn with seed + 1."""
    return cfg.seed * 7919 + index


def evaluate_set(name: str, make_set: Callable[[torch.Generator], SyntheticSet], spec: ModelSpec, lr: float,
                 dataset: ImageDataset, space: PixelSpace, cfg: EvalConfig, device: torch.device, done: list[float],
                 on_model: Callable[[list[float]], None], architecture: str = "convnet") -> list[float]:
    """Accuracies of cfg.num_models nets, each trained on make_set(its generator), continuing after `done`.

    Under torchrun the models are trained in rounds, one per rank, and each round's accuracies gathered before
    the next, so `on_model` (which saves eval.json) sees every finished model even if the job is killed later;
    model i always uses the same seeds, so the result does not depend on the number of processes.
    """
    accuracies, size = list(done), distributed.world_size()
    todo = list(range(len(done), cfg.num_models))
    label = name if architecture == "convnet" else f"{architecture} {name}"
    bar = tqdm(total=len(distributed.my_share(todo)) * cfg.eval_epochs, desc=f"eval {label}", unit="ep",
               dynamic_ncols=True, leave=False, disable=not distributed.is_main())
    for start in range(0, len(todo), size):
        mine: dict[int, float] = {}
        for index in distributed.my_share(todo[start:start + size]):  # at most one model per rank and round
            seed = model_seed(cfg, index)
            synthetic = make_set(torch.Generator().manual_seed(seed + 1))
            model = train_on_synthetic(synthetic, spec, lr, cfg, seed, device, bar, architecture)
            mine[index] = top1_accuracy(model, *dataset.split(cfg.split), space, device)  # --split val|test
        gathered = {i: acc for share in distributed.all_gather_objects(mine) for i, acc in share.items()}
        accuracies += [gathered[i] for i in sorted(gathered)]
        bar.set_postfix(acc=f"{statistics.mean(accuracies):.3f}")
        if distributed.is_main():
            on_model(accuracies)
    bar.close()
    return accuracies


def seam_report(sets: dict[str, list[SyntheticSet]], space: PixelSpace, class_names: list[str],
                real: torch.Tensor | None = None) -> dict:
    """Per set (one or more draws of it) and class: seam ratio and z-score of its canvases or tiled images, and for
    canvases their straight edges anywhere (torus.edge_metrics); with `real` images (uint8) of the data set, the
    set's speckle: the high-frequency share of its samples ÷ that of the real images (≈ 1: as real pictures)."""
    report = {}
    for name, draws in sets.items():
        crop = draws[0].crop if draws[0].periodic else None
        classes = {cls: seam_metrics(torch.cat([s.decoded(space, s.class_pixels(label)) for s in draws]), crop)
                   for label, cls in enumerate(class_names)}
        keys = classes[class_names[0]].keys()
        report[name] = {"classes": classes, **{key: statistics.mean(c[key] for c in classes.values()) for key in keys}}
        if real is not None:
            samples = torch.cat([s.displayed_samples(space, SPECKLE_CROPS, seed)[0] for seed, s in enumerate(draws)])
            report[name]["speckle"] = high_frequency_share(samples) / high_frequency_share(real)
    return report


def real_sample(dataset: ImageDataset, per_class: int = SPECKLE_CROPS) -> torch.Tensor:
    """uint8 real training images (per_class of each class, fixed draw): the reference of speckle."""
    generator = torch.Generator().manual_seed(0)
    picks = []
    for label in range(dataset.num_classes):
        pool = dataset.images_of_class(label)
        picks.append(pool[torch.randperm(len(pool), generator=generator)[:per_class]])
    return torch.cat(picks)


def look_line(name: str, look: dict) -> str:
    """One log line of a set's look: seams, straight edges, speckle, each with its verdict."""
    parts = [f"seams ratio {look['ratio']:.2f} z {look['z']:.1f}"]
    if "edge_z" in look:
        parts.append(f"edges z {look['edge_z']:.1f} (at tile borders {look['tile_edge_z']:.1f})")
    if "speckle" in look:
        parts.append(f"speckle {look['speckle']:.2f}× real")
    seen = any(look[key] > limit for key, limit in VISIBLE.items() if key in look)
    return f"look of {name:<22} " + ", ".join(parts) + (": edges visible" if seen else ": no visible edge")


def summary(accuracies: list[float], lr: float) -> dict:
    """Mean and sample standard deviation (n − 1; None for a single model) of the models' accuracies."""
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else None
    return {"accuracies": accuracies, "mean": statistics.mean(accuracies), "std": std, "lr": lr,
            "models": len(accuracies)}


def plus_minus(s: dict, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± std (n = models)' of a summary; a single model has no ±."""
    spread = "" if s["std"] is None else f" ± {scale * s['std']:.{digits}f}"
    return f"{scale * s['mean']:.{digits}f}{spread} (n = {s['models']})"
