"""`texdistill evaluate`: the distilled set of a run (and the same-budget real baselines) judged into eval.json.

Which sets, the lock, config.json and continuing eval.json model by model are this stage's; training
fresh networks on a set, their accuracy and the set's look are method/evaluate.py; wearability and which judges are
independent of the distillation, method/judges.py.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from texdistill import distributed
from texdistill.config import EvalConfig
from texdistill.data import ImageDataset, PixelSpace, find_dataset, load_dataset
from texdistill.errors import CheckpointError, ConfigError, DataError
from texdistill.method.evaluate import (
    evaluate_set,
    look_line,
    model_seed,
    plus_minus,
    real_sample,
    seam_report,
    summary,
)
from texdistill.method.experts import data_mismatch
from texdistill.method.judges import instance_names, judges_for, left_out, took_part, wearability
from texdistill.method.models import ModelSpec
from texdistill.method.setfile import load_result, result_path
from texdistill.method.synthetic import SyntheticSet
from texdistill.stages.rundir import RunLock, continue_existing, record_config, require_same_options
from texdistill.storage import read_json, write_json

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"


def run(cfg: EvalConfig) -> dict:
    """Evaluate the distilled set of cfg.out (and the same-budget real baselines) into eval.json.

    eval.json is rewritten after every trained model, so a killed evaluation continues with the next model.
    """
    started = time.time()
    device = cfg.torch_device()
    path = cfg.run_dir / EVAL_FILE
    # every check before the data is decoded (and cached) or the lock file made: bad input creates nothing
    synthetic, meta, space, spec, fingerprint = _load_set(cfg)
    mismatch = data_mismatch(find_dataset(**cfg.dataset_options()), meta)
    if mismatch:
        raise ConfigError(f"the synthetic set in {cfg.run_dir} was distilled from {mismatch}; pass matching "
                          f"--data/--res/--val-fraction")
    continue_existing(cfg, "evaluation (eval.json)", path.exists())
    dataset = distributed.main_first(lambda: load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path))
    if len(dataset.split(cfg.split)[1]) == 0:
        raise DataError(f"{dataset.name} has no test images to evaluate on; give the folder a val/ split or "
                        f"use --holdout 0.1 (for experts, distill and evaluate alike)" if cfg.split == "test" else
                        f"{dataset.name} has no validation images to evaluate on (--split val); use --val-fraction "
                        f"0.1 for experts, distill and evaluate alike, or --split test")
    with RunLock(cfg.run_dir, "evaluate"):
        previous = _previous_results(cfg, path, fingerprint)
        if distributed.is_main():
            record_config(cfg, "evaluate")
        results: dict = {"config": cfg.to_dict(), "iteration": meta["iteration"], "synthetic_sha256": fingerprint,
                         "split": cfg.split, "split_images": len(dataset.split(cfg.split)[1]), "complete": False,
                         "sets": {}}  # accuracies on that split of the real data
        log.info("testing the fresh networks on the %s split (%d images)", cfg.split, results["split_images"])
        sets = _sets(cfg, synthetic, meta, dataset, space)
        # seams of the very sets the models train on (model i draws its set from model_seed + 1)
        results["seams"] = seam_report({name: [make_set(torch.Generator().manual_seed(model_seed(cfg, i) + 1))
                                               for i in range(cfg.num_models)] for name, (make_set, _) in sets.items()},
                                       space, dataset.class_names, real_sample(dataset))
        for name, look in results["seams"].items():
            log.info(look_line(name, look))
        if cfg.judge_list:
            results["wearability"] = _wearability(cfg, sets, dataset, space, device, took_part(meta))
        for architecture in cfg.model_list:
            table, before = _slot(results, architecture), _slot(previous, architecture)
            for name, (make_set, lr) in sets.items():
                done = before.get(name, {}).get("accuracies", [])[:cfg.num_models]

                def save_progress(accuracies: list[float], table: dict = table, name: str = name,
                                  lr: float = lr) -> None:
                    table[name] = summary(accuracies, lr)
                    write_json(path, results)

                accuracies = evaluate_set(name, make_set, spec, lr, dataset, space, cfg, device, done, save_progress,
                                          architecture)
                s = table[name] = summary(accuracies, lr)
                log.info("%-28s %s %% (%s, lr %.3g)", name, plus_minus(s, digits=2), architecture, lr)
        results["complete"] = True
        results["seconds"] = round(time.time() - started, 1)
        if distributed.is_main():
            write_json(path, results)
    return results


def _slot(results: dict, architecture: str) -> dict:
    """Where an architecture's results live in eval.json: `sets` for the distillation's ConvNet (as always),
    `architectures[name]` for the others."""
    if architecture == "convnet":
        return results.setdefault("sets", {})
    return results.setdefault("architectures", {}).setdefault(architecture, {})


def _wearability(cfg: EvalConfig, sets: dict, dataset: ImageDataset, space: PixelSpace,
                 device: torch.device, exclude: set[str]) -> dict:
    """Wearability of each set (its first model's draw for a random baseline), logged per set."""
    judges = judges_for(cfg, dataset, device, exclude)
    report = {"judges": {n: {"test_accuracy": j.test_accuracy, "architecture": j.name, "seed": j.seed}
                         for n, j in zip(instance_names(judges), judges)},
              "left_out": left_out(cfg, exclude), "sets": {}}
    for name, (make_set, _) in sets.items():
        synthetic = make_set(torch.Generator().manual_seed(model_seed(cfg, 0) + 1))
        wear = report["sets"][name] = wearability(synthetic, space, judges, cfg.wear_crops, cfg.seed,
                                                  dataset.class_names)
        log.info("wearability of %-22s %.2f ± %.2f (n = %d judges; worst class %.2f; %s)", name, wear["mean"],
                 wear["std"], wear["judges_n"], wear["min"],
                 ", ".join(f"{j} {w['mean']:.2f}" for j, w in wear["judges"].items()))
    return report


def _load_set(cfg: EvalConfig) -> tuple[SyntheticSet, dict, PixelSpace, ModelSpec, str]:
    """The run's distilled set with its metadata, pixel space, model and the SHA-256 of its file."""
    fingerprint = hashlib.sha256(result_path(cfg.run_dir).read_bytes()).hexdigest()
    synthetic, meta, space = load_result(cfg.run_dir)
    space.require_zca(cfg.zca, f"the distilled set in {cfg.run_dir}")
    return synthetic, meta, space, ModelSpec.from_dict(meta["model"]), fingerprint


def _previous_results(cfg: EvalConfig, path: Path, fingerprint: str) -> dict:
    """The eval.json to continue: same options (else refused) and the same synthetic set (else empty)."""
    previous = read_json(path) if path.exists() else None
    if not continue_existing(cfg, "evaluation (eval.json)", previous is not None):
        return {}
    if not isinstance(previous, dict):
        raise CheckpointError(f"{path} is not an evaluation texdistill wrote; move it away or add --force")
    require_same_options(cfg, "the evaluation in eval.json", previous.get("config", {}))
    if previous.get("synthetic_sha256") != fingerprint:
        log.info("the synthetic set changed since %s was written: evaluating it afresh", path)
        return {}
    return previous


def _sets(cfg: EvalConfig, synthetic: SyntheticSet, meta: dict, dataset: ImageDataset,
          space: PixelSpace) -> dict[str, tuple[Callable[[torch.Generator], SyntheticSet], float]]:
    """name → (make the set from a generator, its training lr): the distilled set, then the baselines."""
    sets = {"distilled": (lambda g: synthetic, cfg.eval_lr or meta["syn_lr"])}
    if cfg.baselines:
        for name in synthetic.baselines(dataset, space, torch.Generator()):
            sets[name] = ((lambda g, n=name: synthetic.baselines(dataset, space, g)[n]), meta["expert_lr"])
    return sets
