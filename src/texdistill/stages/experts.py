"""`texdistill experts`: train the missing experts into <out>/experts/, one trajectory file each, resumable.

Training one expert is method/experts.py's `Expert`; this stage owns the folder: the lock, which experts are
finished, the partial trajectory of an unfinished one (saved after every epoch), config.json and log.jsonl.
A finished trajectory is also kept in the user cache (method/netcache.py), keyed by the data's content, every
option of expert training and the expert's index, so another run folder with the same experts copies it
instead of training it again (`--no-cache` or TEXDISTILL_NO_CACHE=1: not).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import ExpertsConfig
from texdistill.data import ImageDataset, PixelSpace, load_dataset
from texdistill.errors import CheckpointError, StorageError
from texdistill.method import netcache
from texdistill.method.augment import dsa_of
from texdistill.method.experts import SPACE_FILE, Expert, expert_path, model_spec_for
from texdistill.method.training import top1_accuracy
from texdistill.stages.rundir import RunLock, continue_existing, discard, record_config, require_same_options
from texdistill.storage import JsonlLog, load_tensors, read_metadata, save_tensors

log = logging.getLogger(__name__)

EXPERT_RECIPE = "mtt-expert-v1"  # change when Expert's training changes, so cached trajectories are trained again


def partial_path(experts_dir: Path, index: int) -> Path:
    """Where an unfinished expert keeps its trajectory so far."""
    return expert_path(experts_dir, index).with_suffix(".partial.safetensors")


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
        self.shared = netcache.user_cache_dir() if cfg.cache else None

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
                elif not self._reuse_cached(index):
                    self.train_one(index)
                    self._share(index)
                paths.append(path)
        return paths

    @functools.cached_property
    def _identity(self) -> dict:
        """The dataset's identity in the user cache's keys (its content fingerprint is computed once)."""
        return netcache.dataset_identity(self.cfg, self.dataset)

    def cached_path(self, index: int) -> Path | None:
        """Where expert `index` of these options lives in the user cache (None: the cache is off)."""
        if self.shared is None:
            return None
        options = {k: v for k, v in self.cfg.to_dict().items() if k not in self.cfg.RESUMABLE | {"data_dir"}}
        key = netcache.key_of({"data": self._identity, "options": options, "index": index,
                               "device": self.device.type, "recipe": EXPERT_RECIPE})
        return self.shared / f"{self.dataset.name}-{self.dataset.image_size[0]}px-expert-{key}.safetensors"

    def _reuse_cached(self, index: int) -> bool:
        """Copy expert `index` from the user cache if it is there (not over a partial one); whether it was."""
        cached = self.cached_path(index)
        if cached is None or not cached.exists() or partial_path(self.dir, index).exists():
            return False
        try:
            if read_metadata(cached).get("kind") != "expert-trajectory":
                raise CheckpointError(f"{cached} is not an expert trajectory")
            netcache.place(cached, expert_path(self.dir, index))
        except (CheckpointError, OSError) as exc:
            log.warning("expert %d: the cached trajectory is unreadable (%s); training it again", index, exc)
            return False
        log.info("expert %d: reused the cached trajectory %s", index, cached)
        self.log.write(expert=index, reused=str(cached))
        return True

    def _share(self, index: int) -> None:
        """Keep a finished expert in the user cache (a full disk only costs the next run the training)."""
        cached = self.cached_path(index)
        if cached is not None:
            try:
                netcache.place(expert_path(self.dir, index), cached)
            except (StorageError, OSError) as exc:
                log.warning("expert %d: could not keep it in the user cache %s (%s)", index, cached, exc)

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
        expert = Expert(cfg, self.spec, index, self.device)
        partial = partial_path(self.dir, index)
        if partial.exists():
            self._restore_partial(partial, expert)
            log.info("expert %d: resuming after epoch %d", index, expert.epochs_done)
        start = time.time()
        bar = tqdm(range(expert.epochs_done, cfg.epochs), desc=f"expert {index + 1}/{cfg.num_experts}",
                   unit="epoch", initial=expert.epochs_done, total=cfg.epochs, dynamic_ncols=True,
                   disable=not distributed.is_main())
        for epoch in bar:
            train_loss, train_acc = expert.train_epoch(data, self.space)
            if epoch + 1 < cfg.epochs:
                self._save_partial(partial, expert)
            # logged after the save, so a resumed expert does not log an epoch twice
            self.log.write(expert=index, epoch=epoch + 1, train_loss=train_loss, train_acc=train_acc)
            bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}")
        accuracy = (top1_accuracy(expert.model, data.test_images, data.test_labels, self.space, self.device)
                    if len(data.test_images) else None)  # a folder dataset with --holdout 0 has no test split
        meta = {**self.metadata(index), "test_acc": accuracy, "train_seconds": time.time() - start}
        trajectory = torch.stack(expert.trajectory)
        save_tensors(expert_path(self.dir, index), {"trajectory": trajectory}, meta)
        partial.unlink(missing_ok=True)
        self.log.write(expert=index, test_acc=accuracy)
        if accuracy is not None:
            log.info("expert %d: test accuracy %.2f%%", index, 100 * accuracy)
        return trajectory

    def _save_partial(self, path: Path, expert: Expert) -> None:
        save_tensors(path, expert.state_tensors(), {"kind": "expert-partial", **self.metadata(-1)})

    def _restore_partial(self, path: Path, expert: Expert) -> None:
        tensors, meta = load_tensors(path)
        require_same_options(self.cfg, f"expert file {path.name}", meta.get("config", {}))
        expert.load_state_tensors(tensors, path)


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
