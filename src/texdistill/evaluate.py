"""Evaluation: train fresh ConvNets only on a synthetic set, report real test accuracy (with baselines)."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from texdistill.config import EvalConfig
from texdistill.data import ImageDataset, PixelSpace, load_dataset
from texdistill.distill import load_result
from texdistill.errors import DataError
from texdistill.models import ModelSpec
from texdistill.storage import read_json, write_json
from texdistill.synthetic import SyntheticSet
from texdistill.training import random_seed, sgd_step, top1_accuracy

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"


def train_on_synthetic(synthetic: SyntheticSet, spec: ModelSpec, lr: float, cfg: EvalConfig, seed: int,
                       device: torch.device, progress: tqdm | None = None) -> torch.nn.Module:
    """A fresh ConvNet trained for cfg.eval_epochs on synthetic samples (fresh crops every epoch for textures)."""
    torch.manual_seed(seed)
    model = spec.build().to(device)
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
            sgd_step(model, optimizer, x, y, cfg.dsa_config(), random_seed(generator))
        if progress is not None:
            progress.update(1)
    return model


def evaluate_set(name: str, make_set: Callable[[torch.Generator], SyntheticSet], spec: ModelSpec, lr: float,
                 dataset: ImageDataset, space: PixelSpace, cfg: EvalConfig, done: list[float],
                 on_model: Callable[[list[float]], None]) -> list[float]:
    """Accuracies of cfg.num_models nets, each trained on make_set(its generator), continuing after `done`."""
    device = cfg.torch_device()
    accuracies = list(done)
    bar = tqdm(total=cfg.num_models * cfg.eval_epochs, initial=len(done) * cfg.eval_epochs,
               desc=f"eval {name}", unit="ep", dynamic_ncols=True, leave=False)
    for index in range(len(done), cfg.num_models):
        seed = cfg.seed * 7919 + index
        synthetic = make_set(torch.Generator().manual_seed(seed + 1))
        model = train_on_synthetic(synthetic, spec, lr, cfg, seed, device, bar)
        accuracies.append(top1_accuracy(model, dataset.test_images, dataset.test_labels, space, device))
        bar.set_postfix(acc=f"{statistics.mean(accuracies):.3f}")
        on_model(accuracies)
    bar.close()
    return accuracies


def summary(accuracies: list[float], lr: float) -> dict:
    return {"accuracies": accuracies, "mean": statistics.mean(accuracies),
            "std": statistics.pstdev(accuracies), "lr": lr, "models": len(accuracies)}


def run(cfg: EvalConfig) -> dict:
    """Evaluate the distilled set of cfg.out (and the same-budget real baselines) into eval.json."""
    started = time.time()
    synthetic, meta, space = load_result(cfg.run_dir)
    spec = ModelSpec(**meta["model"])
    space.require_zca(cfg.zca, f"the distilled set in {cfg.run_dir}")
    dataset = load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path)
    if len(dataset.test_images) == 0:
        raise DataError(f"{dataset.name} has no test images to evaluate on; give the folder a val/ split or "
                        f"use --holdout 0.1 (for experts, distill and evaluate alike)")
    path = cfg.run_dir / EVAL_FILE
    previous = read_json(path) if path.exists() else {}
    same = previous.get("config") == cfg.to_dict() and previous.get("iteration") == meta["iteration"]
    results: dict = {"config": cfg.to_dict(), "iteration": meta["iteration"], "complete": False, "sets": {}}
    sets = {"distilled": (lambda g: synthetic, cfg.eval_lr or meta["syn_lr"])}
    if cfg.baselines:
        names = synthetic.baselines(dataset, space, torch.Generator()).keys()
        for name in names:
            sets[name] = ((lambda g, n=name: synthetic.baselines(dataset, space, g)[n]), meta["expert_lr"])
    for name, (make_set, lr) in sets.items():
        done = previous["sets"][name]["accuracies"] if same and name in previous.get("sets", {}) else []

        def save_progress(accuracies: list[float], name: str = name, lr: float = lr) -> None:
            results["sets"][name] = summary(accuracies, lr)
            write_json(path, results)

        results["sets"][name] = summary(evaluate_set(name, make_set, spec, lr, dataset, space, cfg, done,
                                                     save_progress), lr)
        s = results["sets"][name]
        log.info("%-28s %.2f ± %.2f %% (%d models, lr %.3g)", name, 100 * s["mean"], 100 * s["std"], s["models"], lr)
    results["complete"] = True
    results["seconds"] = round(time.time() - started, 1)
    write_json(path, results)
    return results
