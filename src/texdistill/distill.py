"""The distillation loop: learn the synthetic set and the student lr η by matching expert trajectories.

η is kept positive by construction: the optimiser works on log η. Its SGD lr is scaled so that, near the
initial η₀, a step changes η as MTT's plain SGD on η with lr `lr_lr` would (Δη ≈ η² Δlog η ⇒ lr_log = lr_lr / η₀²).
"""

from __future__ import annotations

import logging
import math
import time
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from texdistill.config import DistillConfig
from texdistill.data import load_dataset
from texdistill.errors import ConfigError, NumericalError
from texdistill.experts import ExpertBank
from texdistill.matching import MatchProblem, Student, match
from texdistill.models import FlatParams
from texdistill.storage import JsonlLog, load_tensors, read_json, save_png, save_tensors, write_json
from texdistill.synthetic import build_synthetic, from_state
from texdistill.training import random_seed

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
RESULT = "synthetic.safetensors"
# options that may change between a run and its resumption
RESUMABLE_CHANGES = {"iterations", "log_every", "snapshot_every", "ckpt_every", "device", "force", "max_bad_steps",
                     "cache", "cache_dir"}


class Distiller:
    """Owns the synthetic set, η, both optimisers and the RNG; `run()` reads top to bottom."""

    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg
        self.device = cfg.torch_device()
        self.run_dir = cfg.run_dir
        self.bank = ExpertBank.open(cfg.experts_path)
        if cfg.max_start_epoch - 1 + cfg.expert_epochs > self.bank.num_epochs:
            raise ConfigError(f"--max-start-epoch {cfg.max_start_epoch} + --expert-epochs {cfg.expert_epochs} "
                              f"needs experts of ≥ {cfg.max_start_epoch - 1 + cfg.expert_epochs} epochs, they have "
                              f"{self.bank.num_epochs}; lower --max-start-epoch to "
                              f"{self.bank.num_epochs - cfg.expert_epochs + 1} or train longer experts")
        self.dataset = load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path)
        self._check_dataset_matches_experts()
        self.space = self.bank.space()
        self.space.require_zca(cfg.zca, f"the experts in {cfg.experts_path}")
        self.flat = FlatParams(self.bank.spec.build().to(self.device))
        self.student = Student(self.flat, cfg.dsa_config())
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.synthetic = build_synthetic(cfg.texture, cfg.init, self.dataset, self.space, self.generator,
                                         cfg.ipc, cfg.canvas_size, cfg.canvas_samples, cfg.batch_syn).to(self.device)
        self.syn_lr_init = cfg.syn_lr_init or float(self.bank.metadata["lr"])
        self.log_syn_lr = torch.nn.Parameter(torch.tensor(math.log(self.syn_lr_init), device=self.device))
        self.opt_img = torch.optim.SGD([self.synthetic.pixels], lr=cfg.lr_img, momentum=cfg.momentum_img)
        self.opt_lr = torch.optim.SGD([self.log_syn_lr], lr=cfg.lr_lr / self.syn_lr_init ** 2, momentum=0.5)
        self.iteration = 0
        self.bad_steps = 0
        self.log = JsonlLog(self.run_dir / "log.jsonl", "distill")

    @property
    def syn_lr(self) -> torch.Tensor:
        return self.log_syn_lr.detach().exp()

    def _check_dataset_matches_experts(self) -> None:
        meta, spec = self.bank.metadata, self.bank.spec
        h, w = self.dataset.image_size
        if (meta["class_names"] != self.dataset.class_names or (spec.height, spec.width_px) != (h, w)
                or spec.channels != self.dataset.channels):
            raise ConfigError(f"experts in {self.cfg.experts_path} were trained on {meta['dataset']} "
                              f"({spec.channels}×{spec.height}×{spec.width_px}, {len(meta['class_names'])} classes), "
                              f"not on {self.dataset.describe()}; pass matching --data/--res or other --experts-dir")

    # ---- one iteration -------------------------------------------------------------------------
    def step(self) -> dict:
        """One distillation iteration; returns its log record."""
        cfg, g = self.cfg, self.generator
        expert = int(torch.randint(len(self.bank.paths), (1,), generator=g))
        start_epoch = int(torch.randint(cfg.min_start_epoch, cfg.max_start_epoch, (1,), generator=g))
        start, target = (t.to(self.device) for t in self.bank.epochs(expert, start_epoch,
                                                                       start_epoch + cfg.expert_epochs))
        problem = MatchProblem(start, target, [random_seed(g) for _ in range(cfg.syn_steps)])
        result = match(cfg.grad_mode, self.student, self.synthetic, self.syn_lr, problem)
        lr_grad = result.lr_grad * self.syn_lr  # chain rule through η = exp(log η)
        record = {"it": self.iteration + 1, "loss": float(result.loss), "syn_lr": float(self.syn_lr),
                  "expert": expert, "start_epoch": start_epoch,
                  "grad_norm": float(result.pixel_grad.norm()), "lr_grad": float(lr_grad)}
        finite = all(math.isfinite(record[k]) for k in ("loss", "grad_norm", "lr_grad"))
        if not finite:
            self.bad_steps += 1
            record["skipped"] = "non-finite loss or gradient"
            if self.bad_steps >= cfg.max_bad_steps:
                raise NumericalError(f"{self.bad_steps} consecutive non-finite steps at iteration {self.iteration + 1}; "
                                     f"lower --lr-img or --lr-lr and resume (the last checkpoint is intact)")
        else:
            self.bad_steps = 0
            self.synthetic.pixels.grad = result.pixel_grad
            self.log_syn_lr.grad = lr_grad.reshape(())
            self.opt_img.step()
            self.opt_lr.step()
        self.iteration += 1
        return record

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> Path:
        """Distil until cfg.iterations (resuming a checkpoint), then write the results; returns the result file."""
        cfg = self.cfg
        self._prepare_run_dir()
        if self.iteration == 0:
            self.save_snapshot()
        bar = tqdm(total=cfg.iterations, initial=self.iteration, desc="distill", unit="it", dynamic_ncols=True)
        started = time.time()
        while self.iteration < cfg.iterations:
            record = self.step()
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", syn_lr=f"{record['syn_lr']:.2e}")
            if self.iteration % cfg.log_every == 0 or "skipped" in record:
                self.log.write(**record, seconds=round(time.time() - started, 2))
            if self.iteration % cfg.snapshot_every == 0:
                self.save_snapshot()
            if self.iteration % cfg.ckpt_every == 0 or self.iteration == cfg.iterations:
                self.save_checkpoint()
                self.save_result()
        bar.close()
        self.save_result()
        log.info("distilled %d iterations; results in %s", self.iteration, self.run_dir)
        return self.run_dir / RESULT

    def _prepare_run_dir(self) -> None:
        """Resume a checkpoint of the same settings, refuse one of other settings (unless --force)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "config.json"
        sections = read_json(config_path) if config_path.exists() else {}
        checkpoint = self.run_dir / CHECKPOINT
        if checkpoint.exists() and not self.cfg.force:
            old = sections.get("distill", {})
            new = self.cfg.to_dict()
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
            if changed:
                raise ConfigError(f"{self.run_dir} holds a distillation with other settings "
                                  f"({', '.join(f'{k}: {old.get(k)} → {new.get(k)}' for k in changed)}); "
                                  f"use another --out, or --force to start over")
            self.load_checkpoint(checkpoint)
            log.info("resuming %s at iteration %d", self.run_dir, self.iteration)
        sections["distill"] = self.cfg.to_dict()
        write_json(config_path, sections)

    # ---- files ---------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"synthetic.{k}": v for k, v in self.synthetic.state_tensors().items()}
        tensors["log_syn_lr"] = self.log_syn_lr.detach()
        tensors["generator"] = self.generator.get_state()
        for name, opt in (("opt_img", self.opt_img), ("opt_lr", self.opt_lr)):
            buf = next(iter(opt.state.values()), {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"{name}.momentum"] = buf
        return tensors

    def save_checkpoint(self) -> None:
        meta = {"kind": "distill-checkpoint", "iteration": self.iteration, "config": self.cfg.to_dict(),
                "synthetic": self.synthetic.settings(), "lr_img": self.opt_img.param_groups[0]["lr"],
                "bad_steps": self.bad_steps}
        save_tensors(self.run_dir / CHECKPOINT, self.state_tensors(), meta)

    def load_checkpoint(self, path: Path) -> None:
        tensors, meta = load_tensors(path)
        with torch.no_grad():
            self.synthetic.pixels.copy_(tensors["synthetic.pixels"])
            self.log_syn_lr.copy_(tensors["log_syn_lr"])
        self.generator.set_state(tensors["generator"])
        for name, opt, param in (("opt_img", self.opt_img, self.synthetic.pixels),
                                 ("opt_lr", self.opt_lr, self.log_syn_lr)):
            if f"{name}.momentum" in tensors:
                opt.state[param]["momentum_buffer"] = tensors[f"{name}.momentum"].to(self.device).clone()
        self.opt_img.param_groups[0]["lr"] = meta["lr_img"]
        self.iteration, self.bad_steps = meta["iteration"], meta["bad_steps"]

    def save_snapshot(self) -> None:
        """The synthetic set as displayable uint8, for the evolution view."""
        pixels = self.synthetic.displayable(self.space)
        save_tensors(self.run_dir / "snapshots" / f"it_{self.iteration:06d}.safetensors",
                     {"pixels": pixels, "labels": self.synthetic.labels},
                     {"kind": "snapshot", "iteration": self.iteration, "synthetic": self.synthetic.settings()})

    def save_result(self) -> None:
        """The learned set (float tensors + η) and its PNG previews."""
        meta = {"kind": "synthetic-set", "iteration": self.iteration, "synthetic": self.synthetic.settings(),
                "syn_lr": float(self.syn_lr), "model": self.bank.spec.to_dict(), "dataset": self.dataset.name,
                "class_names": self.dataset.class_names, "expert_lr": float(self.bank.metadata["lr"])}
        tensors = {**self.synthetic.state_tensors(), **{f"space.{k}": v for k, v in self.space.state_dict().items()}}
        save_tensors(self.run_dir / RESULT, tensors, meta)
        for label, name in enumerate(self.dataset.class_names):
            for relative, image in self.synthetic.previews(label, name, partial(self.synthetic.displayable,
                                                                                self.space)).items():
                save_png(self.run_dir / relative, image)


def load_result(run_dir: str | Path) -> tuple:
    """(synthetic set, metadata, pixel space) of a finished or checkpointed distillation run."""
    from texdistill.data import PixelSpace

    tensors, meta = load_tensors(Path(run_dir) / RESULT)
    space = PixelSpace.from_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("space.")})
    synthetic = from_state(meta["synthetic"], {k: v for k, v in tensors.items() if not k.startswith("space.")})
    return synthetic, meta, space


def run(cfg: DistillConfig) -> Path:
    return Distiller(cfg).run()
