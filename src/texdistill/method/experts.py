"""Expert trajectories: train ConvNets on real data and store θ after every epoch (safetensors, resumable)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import DistillConfig, ExpertsConfig
from texdistill.data import Found, ImageDataset, PixelSpace, load_dataset
from texdistill.errors import CheckpointError, ConfigError
from texdistill.method.augment import dsa_of
from texdistill.method.models import FlatParams, ModelSpec, resolve_depth
from texdistill.method.torus import random_rolls
from texdistill.method.training import random_seed, sgd_step, shuffled_batches, top1_accuracy
from texdistill.stages.rundir import RunLock, continue_existing, discard, record_config, require_same_options
from texdistill.storage import JsonlLog, load_tensors, read_metadata, save_tensors

log = logging.getLogger(__name__)

SPACE_FILE = "space.safetensors"


def expert_path(experts_dir: Path, index: int) -> Path:
    return experts_dir / f"expert_{index:03d}.safetensors"


def partial_path(experts_dir: Path, index: int) -> Path:
    """Where an unfinished expert keeps its trajectory so far."""
    return expert_path(experts_dir, index).with_suffix(".partial.safetensors")


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


class ExpertTrainer:
    """Trains `num_experts` experts one after another into <out>/experts/, skipping finished ones.

    Each epoch of an unfinished expert is saved as `expert_XXX.partial.safetensors` (trajectory so far,
    optimiser momentum and the data-order generator), so a killed run resumes mid-expert exactly.
    """

    def __init__(self, cfg: ExpertsConfig, dataset: ImageDataset | None = None):
        self.cfg = cfg
        self.device = cfg.torch_device()
        self.dir = cfg.run_dir / "experts"
        # --resume with nothing to resume: stop before the data is decoded (and cached) or anything is created
        continue_existing(cfg, "expert trajectories", bool(self._existing()))
        self.dataset = dataset or distributed.main_first(
            lambda: load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path))
        self.space = PixelSpace.fit(self.dataset, cfg.zca, cfg.zca_eps)
        self.spec = model_spec_for(cfg, self.dataset)
        self.log = JsonlLog(cfg.run_dir / "log.jsonl", "experts")

    def metadata(self, index: int) -> dict:
        c = self.cfg
        return {"kind": "expert-trajectory", "index": index, "model": self.spec.to_dict(),
                "dataset": self.dataset.name, "class_names": self.dataset.class_names,
                "lr": c.lr_teacher, "momentum": c.momentum_teacher, "batch": c.batch_train,
                "epochs": c.epochs, "seed": c.seed, "dsa": dataclasses.asdict(dsa_of(c)) if c.dsa else None,
                "zca": c.zca, "precision": c.precision, "config": c.to_dict()}

    def run(self, indices: list[int] | None = None) -> list[Path]:
        """Train every missing expert (or just `indices`); returns the trajectory paths."""
        with RunLock(self.cfg.run_dir, "experts"):
            self._open_run()
            indices = list(range(self.cfg.num_experts)) if indices is None else indices
            paths = []
            for index in indices:
                path = expert_path(self.dir, index)
                if path.exists():
                    partial_path(self.dir, index).unlink(missing_ok=True)  # left by a kill right after the save
                    log.info("expert %d already trained: %s", index, path)
                else:
                    self.train_one(index)
                paths.append(path)
        return paths

    def _existing(self) -> list[Path]:
        """Trajectory files already in the experts folder, finished and partial."""
        return sorted(self.dir.glob("expert_*.safetensors"))

    def _open_run(self) -> None:
        """Continue experts trained with the same options (each file is checked), refuse others unless --force."""
        existing = self._existing()
        resume = continue_existing(self.cfg, "expert trajectories", bool(existing))
        if resume:
            for path in existing:  # a damaged file is an error, not a silent skip
                require_same_options(self.cfg, f"expert file {path.name}", read_metadata(path).get("config", {}))
        distributed.barrier()  # under torchrun: every rank has looked before rank 0 discards anything
        if distributed.is_main():
            if not resume:
                discard([*existing, self.dir / SPACE_FILE])
                self.log.write(event="start")
            record_config(self.cfg, "experts")
            save_tensors(self.dir / SPACE_FILE, self.space.state_dict(),
                         {"kind": "pixel-space", "zca": self.cfg.zca})
            data = self.dataset
            self.log.write(event="dataset", dataset=data.name, layout=data.layout, class_names=data.class_names,
                           train=len(data.train_images), test=len(data.test_images), skipped=data.skipped)
        distributed.barrier()

    def train_one(self, index: int) -> torch.Tensor:
        """Train expert `index` and write its trajectory (epochs + 1, P); resumes a partial one."""
        cfg, data = self.cfg, self.dataset
        torch.manual_seed(cfg.seed * 100_003 + index)  # model init
        model = self.spec.build().to(self.device)
        flat = FlatParams(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr_teacher, momentum=cfg.momentum_teacher)
        generator = torch.Generator().manual_seed(cfg.seed * 100_003 + index + 50_000)
        trajectory = [flat.get().cpu()]
        partial = partial_path(self.dir, index)
        if partial.exists():
            trajectory = self._restore_partial(partial, flat, optimizer, generator)
            log.info("expert %d: resuming after epoch %d", index, len(trajectory) - 1)
        start = time.time()
        bar = tqdm(range(len(trajectory) - 1, cfg.epochs), desc=f"expert {index + 1}/{cfg.num_experts}",
                   unit="epoch", initial=len(trajectory) - 1, total=cfg.epochs, dynamic_ncols=True,
                   disable=not distributed.is_main())
        for epoch in bar:
            loss_sum, correct = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
            for batch in shuffled_batches(len(data.train_images), cfg.batch_train, generator):
                # the uint8 batch goes to the device (4× fewer bytes), where it is normalised (and whitened)
                x = self.space.encode(data.train_images[batch].to(self.device, non_blocking=True))
                if cfg.wrap_shift:
                    x = random_rolls(x, cfg.wrap_shift, generator)
                y = data.train_labels[batch].to(self.device)
                loss, right = sgd_step(model, optimizer, x, y, dsa_of(cfg), random_seed(generator),
                                       cfg.precision)
                loss_sum += loss * len(batch)
                correct += right
            trajectory.append(flat.get().cpu())
            if epoch + 1 < cfg.epochs:
                self._save_partial(partial, trajectory, optimizer, generator)
            # logged after the save, so a resumed expert does not log an epoch twice
            n, loss_sum, correct = len(data.train_images), float(loss_sum), int(correct)  # one read per epoch
            self.log.write(expert=index, epoch=epoch + 1, train_loss=loss_sum / n, train_acc=correct / n)
            bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}")
        accuracy = (top1_accuracy(model, data.test_images, data.test_labels, self.space, self.device)
                    if len(data.test_images) else None)  # a folder dataset with --holdout 0 has no test split
        meta = {**self.metadata(index), "test_acc": accuracy, "train_seconds": time.time() - start}
        save_tensors(expert_path(self.dir, index), {"trajectory": torch.stack(trajectory)}, meta)
        partial.unlink(missing_ok=True)
        self.log.write(expert=index, test_acc=accuracy)
        if accuracy is not None:
            log.info("expert %d: test accuracy %.2f%%", index, 100 * accuracy)
        return torch.stack(trajectory)

    def _save_partial(self, path: Path, trajectory: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                      generator: torch.Generator) -> None:
        tensors = {"trajectory": torch.stack(trajectory), "generator": generator.get_state()}
        momentum = [optimizer.state[p].get("momentum_buffer") for p in _params(optimizer)]
        if all(m is not None for m in momentum):
            tensors["momentum"] = torch.cat([m.reshape(-1) for m in momentum])
        save_tensors(path, tensors, {"kind": "expert-partial", **self.metadata(-1)})

    def _restore_partial(self, path: Path, flat: FlatParams, optimizer: torch.optim.Optimizer,
                         generator: torch.Generator) -> list[torch.Tensor]:
        tensors, meta = load_tensors(path)
        require_same_options(self.cfg, f"expert file {path.name}", meta.get("config", {}))
        rows, momentum = tensors.get("trajectory"), tensors.get("momentum")
        if (rows is None or rows.ndim != 2 or rows.shape[1] != flat.size or "generator" not in tensors
                or (momentum is not None and momentum.numel() != flat.size)):
            raise CheckpointError(f"{path} does not fit this expert (another texdistill version?); add --force "
                                  f"to retrain the experts")
        trajectory = list(rows.unbind(0))
        params = _params(optimizer)
        flat.set(trajectory[-1].to(params[0].device))
        generator.set_state(tensors["generator"])
        if momentum is not None:
            for p, m in zip(params, momentum.split([q.numel() for q in params])):
                optimizer.state[p]["momentum_buffer"] = m.view_as(p).to(p.device).clone()
        return trajectory


def _params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"]]


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


def run(cfg: ExpertsConfig) -> list[Path]:
    """Train the missing experts of cfg; under torchrun each rank trains every world_size-th expert."""
    trainer = ExpertTrainer(cfg)
    trainer.run(distributed.my_share(list(range(cfg.num_experts))))
    distributed.barrier()
    paths = [expert_path(trainer.dir, i) for i in range(cfg.num_experts)]
    if distributed.is_main():
        accuracies = [load_tensors(p)[1]["test_acc"] for p in paths]
        log.info("%d experts, test accuracy %s", len(paths), " ".join(f"{100 * a:.1f}%" for a in accuracies))
    return paths
