"""Independent judges and wearability: is every crop of a texture recognisable as its class?

A *judge* is a network trained on the real training images only, of another architecture and seed than the
distillation's ConvNet, and never used by the distillation. Judges read displayed pixels (uint8, as in the
PNGs), normalised with the dataset's own channel statistics, so they do not depend on a run's pixel space.
They share nothing with the recognition step's recognisers but the Judge container: another training recipe
(`train_judge`: AdamW, warm-up + cosine, label smoothing 0.1, random resized crops + flips + random erasing;
the recognisers: SGD + Nesterov, one-cycle, shifts + flips, recognition.train_recognizer), other
architectures (by default a vision transformer without convolutions and LeNet-5) and other seeds, each
architecture with JUDGE_SEEDS seeds. They are trained once per dataset, resolution and class list and cached
(the user cache, method/netcache.py, and a copy in the run's `<cache>/judges/`).

*Wearability* of a set = the share of its samples that a judge classifies as their class: for a texture,
`crops` uniformly random wrap-around crops per canvas (seams included); for an image set, its images.
Reported per class and as the mean over classes, per judge, and averaged over the judges with the sample std
over the judge instances (n of them).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import CommonConfig, EvalConfig
from texdistill.data import ImageDataset, PixelSpace
from texdistill.errors import CheckpointError, ConfigError
from texdistill.method import architectures, netcache
from texdistill.method.synthetic import SyntheticSet
from texdistill.method.training import shuffled_batches
from texdistill.storage import load_tensors, save_tensors

log = logging.getLogger(__name__)

JUDGE_RECIPE = "judge-adamw-smooth-rrc-erase-v1"  # change when train_judge changes, so cached judges are retrained
DEFAULT_JUDGES = ("vit-tiny", "lenet")  # config.EvalConfig.judges
JUDGE_SEED = 104_729  # no expert, recogniser or evaluation model is seeded like this
JUDGE_SEEDS = 2  # judges per architecture (seeds JUDGE_SEED, JUDGE_SEED + 1, …): wearability's ± is over them
JUDGE_WIDTH = 64  # the ConvNet judges are narrower than the distillation's ConvNet


@dataclass
class Judge:
    """A trained network and the normalisation of its input; `classify` takes displayed uint8 pixels."""

    name: str
    model: nn.Module
    mean: torch.Tensor  # (1, C, 1, 1) channel means in [0, 1] units
    std: torch.Tensor  # (1, C, 1, 1)
    test_accuracy: float
    seed: int | None = None

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


def new_network(name: str, dataset: ImageDataset, device: torch.device) -> Judge:
    """An untrained network `name` for the dataset's images, with the dataset's channel statistics."""
    model = architectures.build(name, dataset.channels, dataset.num_classes, dataset.image_size[0], width=JUDGE_WIDTH)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in dataset.channel_stats())
    return Judge(name, model.to(device), mean, std, 0.0)


def test_accuracy(judge: Judge, dataset: ImageDataset) -> float:
    predicted = judge.classify(dataset.test_images)
    return float((predicted == dataset.test_labels).float().mean()) if len(predicted) else float("nan")


def resized_crops_erased(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The judges' augmentation of float images (B, C, H, W): a random resized crop (area 60–100 %, aspect
    3/4–4/3, bilinear, resized back to H×W), a left-right flip with probability 0.5, then with probability 0.5
    one random rectangle (2–20 % of the area) set to 0 (the channel mean, after normalisation)."""
    b, _, h, w = images.shape
    u = torch.rand(b, 7, generator=generator)
    area, aspect = 0.6 + 0.4 * u[:, 0], torch.exp((u[:, 1] - 0.5) * 2 * math.log(4 / 3))
    sx, sy = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)  # crop side / image side
    tx, ty = (1 - sx) * (2 * u[:, 2] - 1), (1 - sy) * (2 * u[:, 3] - 1)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, tx, sy, ty
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    side = (0.02 + 0.18 * u[:, 5]).sqrt()  # a square of that share of the area
    y0, x0 = (torch.rand(b, 2, generator=generator) * (1 - side.view(-1, 1))).unbind(1)
    ys, xs = (torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w
    inside = (((ys.view(1, -1) >= y0.view(-1, 1)) & (ys.view(1, -1) < (y0 + side).view(-1, 1))).unsqueeze(2)
              & ((xs.view(1, -1) >= x0.view(-1, 1)) & (xs.view(1, -1) < (x0 + side).view(-1, 1))).unsqueeze(1))
    erase = (inside & (u[:, 6] < 0.5).view(-1, 1, 1)).unsqueeze(1).to(images.device)
    return out.masked_fill(erase, 0.0)


def train_judge(name: str, dataset: ImageDataset, epochs: int, device: torch.device, seed: int = JUDGE_SEED) -> Judge:
    """A judge of architecture `name` trained on the real training images: AdamW (lr 2e-3, weight decay 0.05),
    a linear warm-up over the first 10 % of steps then cosine to 0, cross-entropy with label smoothing 0.1,
    batches of 128 augmented by resized_crops_erased."""
    torch.manual_seed(seed)
    judge = new_network(name, dataset, device)
    steps = max(1, epochs * math.ceil(len(dataset.train_images) / 128))
    warm = max(1, steps // 10)
    optimizer = torch.optim.AdamW(judge.model.parameters(), lr=2e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + math.cos(math.pi * (t - warm) / (steps - warm))))
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        x = resized_crops_erased(judge._encode(dataset.train_images[batch].to(device)), generator)
        return F.cross_entropy(judge.model(x), dataset.train_labels[batch].to(device), label_smoothing=0.1)

    return fit(judge, dataset, epochs, generator, optimizer, schedule, batch_loss, f"judge {name}")


def fit(judge: Judge, dataset: ImageDataset, epochs: int, generator: torch.Generator, optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler, batch_loss: Callable[[torch.Tensor], torch.Tensor],
        desc: str) -> Judge:
    """Train a network on shuffled batches of 128 real training images (`batch_loss` of a batch's indices, the
    recipe's augmentation inside), stepping `schedule` every batch; its test accuracy set. Judges and recognisers
    share this loop, not their recipes."""
    judge.model.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", leave=False, disable=not distributed.is_main()):
        for batch in shuffled_batches(len(dataset.train_images), 128, generator):
            loss = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    judge.test_accuracy = test_accuracy(judge, dataset)
    return judge


Trainer = Callable[[str, ImageDataset, int, torch.device, int], Judge]


def judge_key(identity: dict, name: str, epochs: int, seed: int = JUDGE_SEED, recipe: str = JUDGE_RECIPE) -> str:
    """What a trained network depends on: the dataset's identity (with its content's fingerprint), the
    architecture (and its revision, if it has one), the training recipe (name and version), the epochs and the seed."""
    revision = {"revision": architectures.REVISION[name]} if name in architectures.REVISION else {}
    return netcache.key_of({"data": identity, "network": name, **revision, "epochs": epochs, "recipe": recipe,
                            "seed": seed})


def load_judges(names: tuple[str, ...], dataset: ImageDataset, identity: dict, folder: Path, epochs: int,
                device: torch.device, seeds: tuple[int, ...] | None = None, recipe: str = JUDGE_RECIPE,
                train: Trainer | None = None, shared: Path | None = None) -> list[Judge]:
    """The networks `names` (one per seed in `seeds`; default: the judges' seed) trained on this dataset's real
    images by `train` (default train_judge; `recipe` names it in the key): from `folder` if trained before, else
    from the user cache `shared` (copied into `folder`), else trained now and saved in both.

    Under torchrun rank 0 trains and saves them; the other ranks wait and read the files.
    """
    judges = []
    for name, seed in zip(names, seeds or (JUDGE_SEED,) * len(names)):
        key = judge_key(identity, name, epochs, seed, recipe)
        file = f"{dataset.name}-{dataset.image_size[0]}px-{name}-{key}.safetensors"
        path = folder / file
        if distributed.is_main() and not _readable(path, name, dataset):
            if shared is not None and _readable(shared / file, name, dataset):
                netcache.place(shared / file, path)
                log.info("%s (seed %d): reused the cached network %s", name, seed, shared / file)
            else:
                started, cpu = time.time(), time.process_time()
                judge = (train or train_judge)(name, dataset, epochs, device, seed)
                save_tensors(path, {**{f"model.{k}": v for k, v in judge.model.state_dict().items()},
                                    "mean": judge.mean, "std": judge.std},
                             {"kind": "judge", "architecture": name, "epochs": epochs, "seed": seed, "key": key,
                              "recipe": recipe, "test_accuracy": judge.test_accuracy, "dataset": dataset.name,
                              "identity": identity, "train_seconds": round(time.time() - started, 1),
                              "train_cpu_seconds": round(time.process_time() - cpu, 1)})
                if shared is not None:
                    netcache.place(path, shared / file)
                log.info("%s (seed %d): trained in %.0f s (%.0f CPU s), test accuracy %.1f %% (cached in %s)", name,
                         seed, time.time() - started, time.process_time() - cpu, 100 * judge.test_accuracy,
                         shared / file if shared else path)
        distributed.barrier()
        judges.append(_read_judge(path, name, dataset, device))
    return judges


def trained_on_real_data(cfg: CommonConfig, dataset: ImageDataset, names: tuple[str, ...], epochs: int,
                         device: torch.device, seeds: tuple[int, ...] | None = None, recipe: str = JUDGE_RECIPE,
                         train: Trainer | None = None) -> list[Judge]:
    """load_judges for the dataset of a stage's options: from the user cache (unless --no-cache or
    TEXDISTILL_NO_CACHE), with a copy in the run's cache folder (<cache>/judges/)."""
    identity = netcache.dataset_identity(cfg, dataset)
    folder = (cfg.cache_path or cfg.run_dir / "cache") / "judges"
    shared = netcache.user_cache_dir() if cfg.cache else None
    return load_judges(names, dataset, identity, folder, epochs, device, seeds, recipe, train, shared)


def took_part(meta: dict) -> set[str]:
    """Architectures of the networks a distillation used: its experts' ConvNet and its recognisers."""
    return {"convnet", *meta.get("recognizers", [])}


def judges_for(cfg: EvalConfig, dataset: ImageDataset, device: torch.device,
               exclude: set[str] = frozenset()) -> list[Judge]:
    """The independent judges of this dataset, JUDGE_SEEDS seeds per architecture (trained on its real training
    images once, then cached); judges of the family of an architecture in `exclude` (one the distillation used:
    architectures.family) are left out."""
    dropped = left_out(cfg, exclude)
    names = tuple(j for j in cfg.judge_list if j not in dropped)
    for name in dropped:
        log.warning("judge %s left out: the distillation used networks of that architecture family, so it is no "
                    "independent judge of what it made", name)
    if not names:
        raise ConfigError(f"every judge in --judges {cfg.judges} is of an architecture the distillation used "
                          f"({', '.join(sorted(exclude))}); choose others, e.g. --judges vit-tiny,lenet")
    seeds = tuple(JUDGE_SEED + i for _ in names for i in range(JUDGE_SEEDS))
    return trained_on_real_data(cfg, dataset, tuple(n for n in names for _ in range(JUDGE_SEEDS)), cfg.judge_epochs,
                                device, seeds)


def left_out(cfg: EvalConfig, exclude: set[str]) -> list[str]:
    """The judges in --judges of an architecture family the distillation used."""
    used = {architectures.family(a) for a in exclude}
    return sorted(j for j in cfg.judge_list if architectures.family(j) in used)


def _readable(path: Path, name: str, dataset: ImageDataset) -> bool:
    """Whether `path` holds a whole network `name` for this dataset; an unreadable one is removed, with a warning."""
    if not path.exists():
        return False
    try:
        _read_judge(path, name, dataset, torch.device("cpu"))
        return True
    except (CheckpointError, RuntimeError, KeyError, ValueError) as exc:
        log.warning("%s is unreadable (%s); training that network again", path, exc)
        path.unlink(missing_ok=True)
        return False


def _read_judge(path: Path, name: str, dataset: ImageDataset, device: torch.device) -> Judge:
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "judge" or meta.get("architecture") != name:
        raise CheckpointError(f"{path} is not a {name} network texdistill wrote; delete it to retrain it")
    model = architectures.build(name, dataset.channels, dataset.num_classes, dataset.image_size[0], width=JUDGE_WIDTH)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    return Judge(name, model.to(device), tensors["mean"], tensors["std"], float(meta["test_accuracy"]), meta.get("seed"))


def recognition(images: torch.Tensor, labels: torch.Tensor, classify, num_classes: int) -> dict:
    """Share of uint8 `images` (N, C, H, W) that `classify` puts in their class `labels` (N,): per class and mean."""
    right = (classify(images) == labels).float()
    per_class = [float(right[labels == k].mean()) for k in range(num_classes)]
    return {"classes": per_class, "mean": statistics.mean(per_class)}


def instance_names(judges: list[Judge]) -> list[str]:
    """A name per judge: its architecture, with "/1", "/2", … where an architecture has several seeds."""
    seen: dict[str, int] = {}
    repeated = {j.name for j in judges if sum(k.name == j.name for k in judges) > 1}
    names = []
    for j in judges:
        seen[j.name] = seen.get(j.name, 0) + 1
        names.append(f"{j.name}/{seen[j.name]}" if j.name in repeated else j.name)
    return names


def judged(images: torch.Tensor, labels: torch.Tensor, judges: list[Judge], class_names: list[str]) -> dict:
    """Per judge and averaged over judges: the share of uint8 `images` (N, C, H, W) recognised as their class
    `labels` (N,), per class and mean; `std` is the sample std of the judges' means (n = `judges_n`; 0 for one)
    and `architectures` the mean, std and n per architecture."""
    by_judge = {name: recognition(images, labels, j.classify, len(class_names))
                for name, j in zip(instance_names(judges), judges)}
    per_class = [statistics.mean(r["classes"][k] for r in by_judge.values()) for k in range(len(class_names))]
    means = [r["mean"] for r in by_judge.values()]
    groups: dict[str, list[float]] = {}
    for j, m in zip(judges, means):
        groups.setdefault(j.name, []).append(m)
    return {"judges": {name: {"classes": dict(zip(class_names, r["classes"])), "mean": r["mean"]}
                       for name, r in by_judge.items()},
            "classes": dict(zip(class_names, per_class)), "mean": statistics.mean(per_class),
            "std": _std(means), "judges_n": len(means), "min": min(per_class), "samples": len(labels),
            "architectures": {a: {"mean": statistics.mean(v), "std": _std(v), "n": len(v)} for a, v in groups.items()}}


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def wearability(synthetic: SyntheticSet, space: PixelSpace, judges: list[Judge], crops: int, seed: int,
                class_names: list[str]) -> dict:
    """judged() on the set's displayed samples: crops of a texture, the images of an image set."""
    return judged(*synthetic.displayed_samples(space, crops, seed), judges, class_names)
