"""How good can a texture of real garments be? All the real data, seen the way a texture is seen.

    python benchmarks/texture_ceiling.py [--preset demo] [--epochs 10] [--models 3] [--cache-dir DIR]

A texture is used through uniformly random wrap-around crops: the evaluation models train on such crops and the
judges read such crops (wearability). This script shows the same two numbers for *real* data in three forms:

- centred:       the images as they are (what the experts, the `random real ×4` baseline and the test set show)
- rolled:        each image rolled by a uniformly random (dy, dx) — a random crop of that image tiled
- collage crops: a uniformly random wrap-around crop of a fresh 2 × 2 collage of four images of the class — a crop
                 of a real-collage canvas, the demo's starting point, drawn anew for every sample

Accuracy: ConvNets of the preset's experts (its width, depth), trained on the whole real training set in
that form with the evaluation protocol (SGD lr = the experts' lr, momentum and weight decay of `evaluate`, the lr
divided by 10 half-way, the preset's DSA), tested on the centred test images; mean ± sample std over --models
seeds. Recognition: the share of the test images in that form that the independent judges (ResNet-10 and LeNet,
cached like `evaluate`'s) put in their class, mean over classes as in wearability, per judge and averaged.

A texture's crops at uniformly random offsets are translation-uniform like the rolled and collage-crop forms, so
the whole training set in those forms is what a texture of real garments would have to beat.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from texdistill.config import EvalConfig, ExpertsConfig, build_config
from texdistill.data import PixelSpace, load_dataset
from texdistill.method.augment import dsa_of
from texdistill.method.experts import model_spec_for
from texdistill.method.judges import judged, trained_on_real_data
from texdistill.method.torus import random_rolls, wrap_crops
from texdistill.method.training import random_seed, sgd_step, shuffled_batches, top1_accuracy
from texdistill.presets import preset_values

FORMS = ("centred", "rolled", "collage crops")
JUDGES = ("resnet10", "lenet")


def collage_crops(images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, pool_labels: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """For each image (B, C, h, w): a uniformly random wrap-around crop of a 2 × 2 canvas of it and three random
    images of its class from `pool` (N, C, h, w)."""
    b, _, h, w = images.shape
    others = torch.empty(b, 3, dtype=torch.long)
    for label in labels.unique():
        rows = (labels == label).nonzero().squeeze(1)
        members = (pool_labels == label).nonzero().squeeze(1)
        others[rows] = members[torch.randint(len(members), (len(rows), 3), generator=generator)]
    tiles = [images, *(pool[others[:, i]] for i in range(3))]
    canvases = torch.cat([torch.cat(tiles[:2], dim=3), torch.cat(tiles[2:], dim=3)], dim=2)  # (B, C, 2h, 2w)
    dy, dx = torch.randint(2 * h, (b,), generator=generator), torch.randint(2 * w, (b,), generator=generator)
    return wrap_crops(canvases, torch.arange(b), dy, dx, (h, w))


def in_form(form: str, images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, pool_labels: torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
    """uint8 or float images (B, C, h, w) shown in `form` (one of FORMS)."""
    if form == "centred":
        return images
    if form == "rolled":
        return random_rolls(images, 1.0, generator)
    return collage_crops(images, labels, pool, pool_labels, generator)


def train(form: str, dataset, space: PixelSpace, spec, cfg: EvalConfig, lr: float, epochs: int, seed: int,
          device: torch.device) -> float:
    """Test accuracy of a fresh ConvNet trained `epochs` on the whole training set in `form`."""
    torch.manual_seed(seed)
    model = spec.build().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.eval_momentum,
                                weight_decay=cfg.eval_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    images, labels = dataset.train_images, dataset.train_labels
    for epoch in range(epochs):
        if epoch == epochs // 2:
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.1
        for batch in shuffled_batches(len(images), cfg.eval_batch, generator):
            x = in_form(form, images[batch], labels[batch], images, labels, generator)
            sgd_step(model, optimizer, space.encode(x.to(device)), labels[batch].to(device), dsa_of(cfg),
                     random_seed(generator))
    return top1_accuracy(model, dataset.test_images, dataset.test_labels, space, device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="preset whose data, ConvNet, lr and DSA are used (default: demo)")
    p.add_argument("--epochs", type=int, default=10, help="epochs over the whole training set per model (default: 10)")
    p.add_argument("--models", type=int, default=3, help="ConvNets per form, seeds 0..n-1 (default: 3)")
    p.add_argument("--forms", default=",".join(FORMS), help=f"comma-separated, of: {', '.join(FORMS)}")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/cache"), help="where the judges are cached "
                   "(trained on first use, ≈ 2–3 min on 2 CPU cores; default: runs/cache)")
    args = p.parse_args()
    forms = [f.strip() for f in args.forms.split(",")]
    if unknown := sorted(set(forms) - set(FORMS)):
        p.error(f"unknown form(s) {', '.join(unknown)}; choose from {', '.join(FORMS)}")
    values = {**preset_values(args.preset), "out": "/tmp/texture-ceiling", "cache_dir": str(args.cache_dir)}
    cfg = build_config(EvalConfig, values)
    experts_cfg = build_config(ExpertsConfig, values)
    device = cfg.torch_device()
    dataset = load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path)
    space = PixelSpace.fit(dataset, experts_cfg.zca, experts_cfg.zca_eps)
    spec = model_spec_for(experts_cfg, dataset)
    judges = trained_on_real_data(cfg, dataset, JUDGES, cfg.judge_epochs, device)
    print(f"{dataset.name}: {len(dataset.train_images)} training images, {len(dataset.test_images)} test images; "
          f"ConvNet w{spec.width} d{spec.depth}, lr {experts_cfg.lr_teacher}, {args.epochs} epochs, "
          f"n = {args.models} seeds; judges {', '.join(f'{j.name} ({100 * j.test_accuracy:.1f} %)' for j in judges)}")
    print(f"| real images, seen as | test accuracy (n = {args.models}) "
          f"| recognised by the judges | {' | '.join(j.name for j in judges)} | worst class | s |")
    print("|---" * (5 + len(judges)) + "|")
    for form in forms:
        started = time.time()
        seen = in_form(form, dataset.test_images, dataset.test_labels, dataset.test_images, dataset.test_labels,
                       torch.Generator().manual_seed(12345))
        read = judged(seen, dataset.test_labels, judges, dataset.class_names)
        worst = min(read["classes"], key=read["classes"].get)
        accuracies = [train(form, dataset, space, spec, cfg, experts_cfg.lr_teacher, args.epochs, seed, device)
                      for seed in range(args.models)]
        per_judge = " | ".join(f"{r['mean']:.3f}" for r in read["judges"].values())
        spread = f" ± {100 * statistics.stdev(accuracies):.1f}" if len(accuracies) > 1 else ""
        print(f"| {form} | {100 * statistics.mean(accuracies):.1f}{spread} % | {read['mean']:.3f} | "
              f"{per_judge} | {worst} {read['classes'][worst]:.2f} | {time.time() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
