"""Independent judges and wearability: is every crop of a texture recognisable as its class?

A *judge* is a network trained on the real training images only, of another architecture and seed than the
distillation's ConvNet, and never used by the distillation. Judges read displayed pixels (uint8, as in the
PNGs), normalised with the dataset's own channel statistics, so they do not depend on a run's pixel space.
They are trained once per dataset, resolution and class list and cached (`<cache>/judges/`).

*Wearability* of a set = the share of its samples that a judge classifies as their class: for a texture,
`crops` uniformly random wrap-around crops per canvas (seams included); for an image set, its images.
Reported per class and as the mean over classes, per judge and averaged over the judges.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import CommonConfig
from texdistill.data import ImageDataset, PixelSpace, find_dataset
from texdistill.errors import CheckpointError
from texdistill.method import architectures
from texdistill.method.synthetic import SyntheticSet
from texdistill.method.training import shuffled_batches
from texdistill.storage import load_tensors, save_tensors

log = logging.getLogger(__name__)

JUDGE_VERSION = 1  # bump when judge training changes, so cached judges are retrained
DEFAULT_JUDGES = ("convnet-bn", "resnet10")
JUDGE_SEED = 104_729  # no expert or evaluation model is seeded like this
JUDGE_WIDTH = 64  # the convnet-bn judge is narrower than the distillation's ConvNet (and max-pools, batch-norms)


@dataclass
class Judge:
    """A trained network and the normalisation of its input; `classify` takes displayed uint8 pixels."""

    name: str
    model: nn.Module
    mean: torch.Tensor  # (1, C, 1, 1) channel means in [0, 1] units
    std: torch.Tensor  # (1, C, 1, 1)
    test_accuracy: float

    @torch.no_grad()
    def classify(self, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """Predicted class (N,) of uint8 images (N, C, H, W)."""
        self.model.eval()
        device = next(self.model.parameters()).device
        out = [self.model(self._encode(images[i:i + batch].to(device))).argmax(1).cpu()
               for i in range(0, len(images), batch)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - self.mean.to(images.device)) / self.std.to(images.device)


def translate(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) shifted by a random (dy, dx) in [−max_shift, max_shift], zero-filled, and
    flipped left-right with probability 0.5: the standard augmentation of small-image classifiers."""
    b, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(2 * max_shift + 1, (b,), generator=generator)
    dx = torch.randint(2 * max_shift + 1, (b,), generator=generator)
    rows = (dy.view(-1, 1) + torch.arange(h)).to(images.device)  # (B, h)
    cols = (dx.view(-1, 1) + torch.arange(w)).to(images.device)  # (B, w)
    out = padded.permute(0, 2, 3, 1)[torch.arange(b, device=images.device).view(-1, 1, 1), rows.unsqueeze(2),
                                     cols.unsqueeze(1)].permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)


def train_judge(name: str, dataset: ImageDataset, epochs: int, device: torch.device, seed: int = JUDGE_SEED) -> Judge:
    """A judge of architecture `name` trained on the real training images (SGD + Nesterov, cosine lr)."""
    torch.manual_seed(seed)
    c, (h, _) = dataset.channels, dataset.image_size
    model = architectures.build(name, c, dataset.num_classes, h, width=JUDGE_WIDTH).to(device)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in dataset.channel_stats())
    judge = Judge(name, model, mean, std, 0.0)
    batches = math.ceil(len(dataset.train_images) / 128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=epochs * batches)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(epochs), desc=f"judge {name}", unit="epoch", leave=False, disable=not distributed.is_main()):
        for batch in shuffled_batches(len(dataset.train_images), 128, generator):
            x = translate(dataset.train_images[batch].to(device), max(1, h // 7), generator)
            loss = F.cross_entropy(model(judge._encode(x)), dataset.train_labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    predicted = judge.classify(dataset.test_images)
    judge.test_accuracy = float((predicted == dataset.test_labels).float().mean()) if len(predicted) else float("nan")
    return judge


def judge_key(identity: dict, name: str, epochs: int, seed: int = JUDGE_SEED) -> str:
    """What a cached judge depends on: the dataset's identity, the architecture, the training recipe, the seed."""
    recipe = {"data": identity, "judge": name, "epochs": epochs, "version": JUDGE_VERSION}
    if seed != JUDGE_SEED:  # (judges keep the key they had before seeds could differ)
        recipe["seed"] = seed
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def load_judges(names: tuple[str, ...], dataset: ImageDataset, identity: dict, folder: Path, epochs: int,
                device: torch.device, seeds: tuple[int, ...] | None = None) -> list[Judge]:
    """The networks `names` (one per seed in `seeds`; default: the judges' seed) trained on this dataset's real
    images: from `folder` if trained before, else trained now and saved there.

    Under torchrun rank 0 trains and saves them; the other ranks wait and read the files.
    """
    judges = []
    for name, seed in zip(names, seeds or (JUDGE_SEED,) * len(names)):
        key = judge_key(identity, name, epochs, seed)
        path = folder / f"{dataset.name}-{dataset.image_size[0]}px-{name}-{key}.safetensors"
        if not path.exists() and distributed.is_main():
            started = time.time()
            judge = train_judge(name, dataset, epochs, device, seed)
            save_tensors(path, {**{f"model.{k}": v for k, v in judge.model.state_dict().items()},
                                "mean": judge.mean, "std": judge.std},
                         {"kind": "judge", "architecture": name, "epochs": epochs, "test_accuracy": judge.test_accuracy,
                          "seed": seed, "dataset": dataset.name, "identity": identity,
                          "train_seconds": round(time.time() - started, 1)})
            log.info("%s (seed %d): trained in %.0f s, test accuracy %.1f %% (cached in %s)", name, seed,
                     time.time() - started, 100 * judge.test_accuracy, path)
        distributed.barrier()
        judges.append(_read_judge(path, name, dataset, device))
    return judges


def trained_on_real_data(cfg: CommonConfig, dataset: ImageDataset, names: tuple[str, ...], epochs: int,
                         device: torch.device, seeds: tuple[int, ...] | None = None) -> list[Judge]:
    """load_judges for the dataset of a stage's options, cached in its cache folder (<cache>/judges/)."""
    found = find_dataset(**cfg.dataset_options())
    identity = {"reader": cfg.data, "root": str(found.root.resolve()) if found.root else None, "res": found.res,
                "classes": list(found.class_names), "holdout": cfg.holdout, "counts": found.counts,
                **({"patches": cfg.patches} if cfg.patches else {}),
                **({"background": cfg.background} if cfg.background != "white" else {})}
    folder = (cfg.cache_path or cfg.run_dir / "cache") / "judges"
    return load_judges(names, dataset, identity, folder, epochs, device, seeds)


def _read_judge(path: Path, name: str, dataset: ImageDataset, device: torch.device) -> Judge:
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "judge":
        raise CheckpointError(f"{path} is not a judge texdistill wrote; delete it to retrain the judge")
    c, (h, _) = dataset.channels, dataset.image_size
    model = architectures.build(name, c, dataset.num_classes, h, width=JUDGE_WIDTH)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    return Judge(name, model.to(device), tensors["mean"], tensors["std"], float(meta["test_accuracy"]))


def recognition(images: torch.Tensor, labels: torch.Tensor, classify, num_classes: int) -> dict:
    """Share of uint8 `images` (N, C, H, W) that `classify` puts in their class `labels` (N,): per class and mean."""
    right = (classify(images) == labels).float()
    per_class = [float(right[labels == k].mean()) for k in range(num_classes)]
    return {"classes": per_class, "mean": statistics.mean(per_class)}


def judged(images: torch.Tensor, labels: torch.Tensor, judges: list[Judge], class_names: list[str]) -> dict:
    """Per judge and averaged over judges: the share of uint8 `images` (N, C, H, W) recognised as their class
    `labels` (N,), per class and mean."""
    by_judge = {j.name: recognition(images, labels, j.classify, len(class_names)) for j in judges}
    per_class = [statistics.mean(r["classes"][k] for r in by_judge.values()) for k in range(len(class_names))]
    return {"judges": {name: {"classes": dict(zip(class_names, r["classes"])), "mean": r["mean"]}
                       for name, r in by_judge.items()},
            "classes": dict(zip(class_names, per_class)), "mean": statistics.mean(per_class),
            "min": min(per_class), "samples": len(labels)}


def wearability(synthetic: SyntheticSet, space: PixelSpace, judges: list[Judge], crops: int, seed: int,
                class_names: list[str]) -> dict:
    """judged() on the set's displayed samples: crops of a texture, the images of an image set."""
    return judged(*synthetic.displayed_samples(space, crops, seed), judges, class_names)
