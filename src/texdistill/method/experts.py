"""Expert trajectories: ConvNets trained on real data, θ recorded after every epoch; their files, read back.

Training one expert is `Expert` (one epoch at a time); the experts folder (which experts exist, the lock, the
partial trajectories of unfinished ones, resuming) is the stage's: stages/experts.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from texdistill.config import DistillConfig, ExpertsConfig
from texdistill.data import Found, ImageDataset, PixelSpace
from texdistill.errors import CheckpointError, ConfigError
from texdistill.method.augment import dsa_of
from texdistill.method.models import FlatParams, ModelSpec, resolve_depth
from texdistill.method.torus import random_rolls
from texdistill.method.training import random_seed, sgd_step, shuffled_batches
from texdistill.storage import load_tensors, read_metadata

SPACE_FILE = "space.safetensors"


def expert_path(experts_dir: Path, index: int) -> Path:
    return experts_dir / f"expert_{index:03d}.safetensors"


def data_mismatch(found: Found, meta: dict) -> str | None:
    """How `found` differs from the data a stored model (expert, distilled set) was made on, or None."""
    spec = ModelSpec.from_dict(meta["model"])
    held = held_out(meta)
    if (meta["dataset"], meta["class_names"], spec.channels, spec.height, spec.width_px, held) == (
            found.name, found.class_names, found.channels, found.res, found.res, found.val_fraction):
        return None
    val = (f", --val-fraction {held:g}", f", --val-fraction {found.val_fraction:g}") if held != found.val_fraction \
        else ("", "")
    return (f"{meta['dataset']} ({spec.channels}×{spec.height}×{spec.width_px}, {len(meta['class_names'])} classes"
            f"{val[0]}), not {found.name} ({found.channels}×{found.res}×{found.res}, {len(found.class_names)} classes"
            f"{val[1]})")


def held_out(meta: dict) -> float:
    """The validation fraction held out of the training images a stored model (expert, distilled set) was made
    from: 0 for those made before there was a validation split (they saw every training image)."""
    return float(meta.get("val_fraction", meta.get("config", {}).get("val_fraction", 0.0)))


def model_spec_for(cfg: ExpertsConfig, dataset: ImageDataset) -> ModelSpec:
    """The ConvNet the config asks for, shaped for the dataset."""
    h, w = dataset.image_size
    return ModelSpec(channels=dataset.channels, num_classes=dataset.num_classes, height=h, width_px=w,
                     width=cfg.width, depth=resolve_depth(cfg.depth, h, w))


class Expert:
    """One expert in training: its network, SGD optimiser, data-order generator and trajectory (θ after each epoch).

    Everything random comes from cfg.seed and the expert's index: the initialisation, and the data order, DSA
    and rolls from one generator, so an expert restored from its state_tensors() continues bit-exactly.
    """

    def __init__(self, cfg: ExpertsConfig, spec: ModelSpec, index: int, device: torch.device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed * 100_003 + index)  # model init
        self.model = spec.build().to(device)
        self.flat = FlatParams(self.model)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr_teacher, momentum=cfg.momentum_teacher)
        self.generator = torch.Generator().manual_seed(cfg.seed * 100_003 + index + 50_000)
        self.trajectory = [self.flat.get().cpu()]  # epochs so far + 1 flat parameter vectors, each (P,)

    @property
    def epochs_done(self) -> int:
        return len(self.trajectory) - 1

    def train_epoch(self, data: ImageDataset, space: PixelSpace) -> tuple[float, float]:
        """One epoch of SGD over the training images, θ appended to the trajectory; (mean loss, accuracy)."""
        cfg, device = self.cfg, self.device
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for batch in shuffled_batches(len(data.train_images), cfg.batch_train, self.generator):
            # the uint8 batch goes to the device (4× fewer bytes), where it is normalised (and whitened)
            x = space.encode(data.train_images[batch].to(device, non_blocking=True))
            if cfg.wrap_shift:
                x = random_rolls(x, cfg.wrap_shift, self.generator)
            y = data.train_labels[batch].to(device)
            loss, right = sgd_step(self.model, self.optimizer, x, y, dsa_of(cfg), random_seed(self.generator),
                                   cfg.precision)
            loss_sum += loss * len(batch)
            correct += right
        self.trajectory.append(self.flat.get().cpu())
        n, loss_sum, correct = len(data.train_images), float(loss_sum), int(correct)  # one read per epoch
        return loss_sum / n, correct / n

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What continues this expert: the trajectory so far, the generator and the optimiser's momentum."""
        tensors = {"trajectory": torch.stack(self.trajectory), "generator": self.generator.get_state()}
        momentum = [self.optimizer.state[p].get("momentum_buffer") for p in self._params()]
        if all(m is not None for m in momentum):
            tensors["momentum"] = torch.cat([m.reshape(-1) for m in momentum])
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], source: Path) -> None:
        """Continue from state_tensors() read from `source` (refused if they do not fit this network)."""
        rows, momentum = tensors.get("trajectory"), tensors.get("momentum")
        if (rows is None or rows.ndim != 2 or rows.shape[1] != self.flat.size or "generator" not in tensors
                or (momentum is not None and momentum.numel() != self.flat.size)):
            raise CheckpointError(f"{source} does not fit this expert (another texdistill version?); add --force "
                                  f"to retrain the experts")
        self.trajectory = list(rows.unbind(0))
        params = self._params()
        self.flat.set(self.trajectory[-1].to(params[0].device))
        self.generator.set_state(tensors["generator"])
        if momentum is not None:
            for p, m in zip(params, momentum.split([q.numel() for q in params])):
                self.optimizer.state[p]["momentum_buffer"] = m.view_as(p).to(p.device).clone()

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]


@dataclass
class ExpertBank:
    """The stored trajectories of one experts folder; reads only the epochs a distillation step needs."""

    paths: list[Path]
    metadata: dict

    @classmethod
    def open(cls, experts_dir: str | Path) -> "ExpertBank":
        experts_dir = Path(experts_dir)
        paths = sorted(p for p in experts_dir.glob("expert_*.safetensors") if ".partial." not in p.name)
        if not paths:
            raise CheckpointError(f"no expert trajectories in {experts_dir}; run `texdistill experts` first "
                                  f"(with the same --out) or pass --experts-dir")
        metas = [read_metadata(p) for p in paths]
        for path, meta in zip(paths, metas):
            if meta.get("kind") != "expert-trajectory":
                raise CheckpointError(f"{path} is a {meta.get('kind')} file, not an expert trajectory; move it away")
        def value(meta: dict, key: str) -> Any:  # a spec stored before the GAP head's retirement names its head
            return ModelSpec.from_dict(meta[key]) if key == "model" and key in meta else meta.get(key)

        keys = ("model", "dataset", "class_names", "lr")
        for path, meta in zip(paths[1:], metas[1:]):
            for key in keys:
                if value(meta, key) != value(metas[0], key):
                    raise CheckpointError(f"{path.name} has another {key} than {paths[0].name}; "
                                          f"keep one model/dataset per experts folder")
        return cls(paths, metas[0])

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.metadata["model"])

    @property
    def num_epochs(self) -> int:
        return int(self.metadata["epochs"])

    def space(self) -> PixelSpace:
        tensors, _ = load_tensors(self.paths[0].parent / SPACE_FILE)
        return PixelSpace.from_state_dict(tensors)

    def require_fit(self, found: Found, cfg: DistillConfig) -> None:
        """These experts must come from `found`'s dataset and resolution, be ConvNets of cfg's width and depth,
        and be long enough for its start epochs and segment."""
        spec, where = self.spec, cfg.experts_path
        if cfg.max_start_epoch - 1 + cfg.expert_epochs > self.num_epochs:
            raise ConfigError(f"--max-start-epoch {cfg.max_start_epoch} + --expert-epochs {cfg.expert_epochs} "
                              f"needs experts of ≥ {cfg.max_start_epoch - 1 + cfg.expert_epochs} epochs, they have "
                              f"{self.num_epochs}; lower --max-start-epoch to "
                              f"{self.num_epochs - cfg.expert_epochs + 1} or train longer experts")
        mismatch = data_mismatch(found, self.metadata)
        if mismatch:
            raise ConfigError(f"experts in {where} were trained on {mismatch}; pass matching --data/--res/"
                              f"--val-fraction or other --experts-dir")
        depth = resolve_depth(cfg.depth, found.res, found.res)
        if (cfg.width, depth) != (spec.width, spec.depth):
            raise ConfigError(f"experts in {where} are ConvNets of width {spec.width}, depth {spec.depth}, "
                              f"not width {cfg.width}, depth {depth}; pass --width {spec.width} --depth {spec.depth} "
                              f"or other --experts-dir")

    def epochs(self, expert: int, *epochs: int) -> list[torch.Tensor]:
        """Flat parameter vectors of `expert` at the given epochs (0 = initialisation)."""
        with safe_open(str(self.paths[expert]), framework="pt") as f:
            rows = f.get_slice("trajectory")
            return [rows[e] for e in epochs]

