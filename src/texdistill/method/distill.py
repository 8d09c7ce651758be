"""The distillation loop: learn the synthetic set and the student lr η by matching expert trajectories.

η is kept positive by construction: the optimiser works on log η. Its SGD lr is scaled so that, near the
initial η₀, a step changes η as MTT's plain SGD on η with lr `lr_lr` would (Δη ≈ η² Δlog η ⇒ lr_log = lr_lr / η₀²).

Never losing a run: every --ckpt-every iterations the whole state (pixels, log η, both momenta, the last good
state, the pixel lr, the generator that draws every random choice, the counters) goes to one safetensors file;
re-running the same command continues it bit-exactly. A non-finite loss or gradient restores the last good
state and halves the pixel lr; --max-bad-steps of them in a row stop the run with the good state saved.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from texdistill import distributed
from texdistill.config import DistillConfig
from texdistill.data import Found, find_dataset, load_dataset
from texdistill.errors import CheckpointError, ConfigError, NumericalError
from texdistill.method.experts import ExpertBank, data_mismatch
from texdistill.method.judges import Judge, trained_on_real_data
from texdistill.method.matching import MatchProblem, MatchResult, Student, match
from texdistill.method.models import FlatParams, resolve_depth
from texdistill.method.recognition import RECOGNIZER_SEED, RecognitionTerm
from texdistill.method.setfile import RESULT, SNAPSHOTS
from texdistill.method.synthetic import Draw, SyntheticSet, TextureCanvas, build_synthetic, from_state
from texdistill.method.training import random_seed
from texdistill.rundir import RunLock, continue_existing, discard, record_config, require_same_options
from texdistill.storage import JsonlLog, load_tensors, save_png, save_tensors

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.safetensors"
LR_BACKOFF = 0.5  # the pixel lr is multiplied by this after every non-finite step

# a test seam: called with (iteration, result) after every match, returns the result to use
StepHook = Callable[[int, MatchResult], MatchResult]


@dataclass
class OptimState:
    """What an update changes: pixels, log η, soft labels, EMA and the optimisers' buffers (None when absent:
    before the first step, or without soft labels / EMA / recognition)."""

    pixels: torch.Tensor
    log_syn_lr: torch.Tensor
    momentum_img: torch.Tensor | None
    momentum_lr: torch.Tensor | None
    label_logits: torch.Tensor | None = None
    momentum_label: torch.Tensor | None = None
    ema_pixels: torch.Tensor | None = None
    recognition_step: torch.Tensor | None = None  # the recognition step's Adam state (--recognition-lr)
    recognition_exp_avg: torch.Tensor | None = None
    recognition_exp_avg_sq: torch.Tensor | None = None

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {f"{prefix}.{k}": v for k, v in named.items() if v is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str, device: torch.device) -> "OptimState":
        def get(name: str) -> torch.Tensor | None:
            t = tensors.get(f"{prefix}.{name}")
            return None if t is None else t.to(device)

        return cls(**{f.name: get(f.name) for f in dataclasses.fields(cls)})


class Distiller:
    """Owns the synthetic set, η, both optimisers and the RNG; `run()` reads top to bottom."""

    def __init__(self, cfg: DistillConfig, step_hook: StepHook | None = None,
                 on_checkpoint: Callable[[], None] | None = None):
        self.cfg = cfg
        self.step_hook = step_hook
        self.on_checkpoint = on_checkpoint  # called after every checkpoint (e.g. to refresh a live report)
        self.device = cfg.torch_device()
        self.run_dir = cfg.run_dir
        # --resume with nothing to resume: stop before the data is decoded (and cached) or anything is created
        continue_existing(cfg, "distillation checkpoint", (self.run_dir / CHECKPOINT).exists())
        self.bank = ExpertBank.open(cfg.experts_path)
        if cfg.max_start_epoch - 1 + cfg.expert_epochs > self.bank.num_epochs:
            raise ConfigError(f"--max-start-epoch {cfg.max_start_epoch} + --expert-epochs {cfg.expert_epochs} "
                              f"needs experts of ≥ {cfg.max_start_epoch - 1 + cfg.expert_epochs} epochs, they have "
                              f"{self.bank.num_epochs}; lower --max-start-epoch to "
                              f"{self.bank.num_epochs - cfg.expert_epochs + 1} or train longer experts")
        self._check_experts_fit(find_dataset(**cfg.dataset_options()))  # before decoding: a misfit caches nothing
        self.dataset = load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path)
        self.space = self.bank.space()
        self.space.require_zca(cfg.zca, f"the experts in {cfg.experts_path}")
        self.flat = FlatParams(self.bank.spec.build().to(self.device))
        self.student = Student(self.flat, cfg.dsa_config(), compile=cfg.compile_kernels())
        # every random choice of the run (init, experts, start epochs, step seeds) comes from this generator
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.synthetic = build_synthetic(cfg.texture, cfg.init, self.dataset, self.space, self.generator,
                                         cfg.ipc, cfg.canvas_size, cfg.canvas_samples, cfg.batch_syn).to(self.device)
        if cfg.clamp_pixels:  # noise starts displayable too
            self.project_pixels()
        self.opt_label = None
        if cfg.soft_labels:
            self.synthetic.use_soft_labels(self.expert_logits())
            self.opt_label = torch.optim.SGD([self.synthetic.label_logits], lr=cfg.lr_label, momentum=0.9)
        self.ema_pixels = self.synthetic.pixels.detach().clone() if cfg.ema_decay else None
        self.syn_lr_init = cfg.syn_lr_init or float(self.bank.metadata["lr"])
        self.log_syn_lr = torch.nn.Parameter(torch.tensor(math.log(self.syn_lr_init), device=self.device))
        self.opt_img = torch.optim.SGD([self.synthetic.pixels], lr=cfg.lr_img, momentum=cfg.momentum_img)
        self.opt_lr = torch.optim.SGD([self.log_syn_lr], lr=cfg.lr_lr / self.syn_lr_init ** 2, momentum=0.5)
        self.recognition, self.opt_rec = None, None
        if cfg.recognition_lr:
            self.recognition = RecognitionTerm(self.recognizers(), cfg.recognition_prior, cfg.recognition_crops,
                                               cfg.dsa_config())
            self.opt_rec = torch.optim.Adam([self.synthetic.pixels], lr=cfg.recognition_lr)
        self.iteration = 0
        self.bad_steps = 0
        self.good = self.capture()  # the state the last finite step started from
        self.log = JsonlLog(self.run_dir / "log.jsonl", "distill")

    @property
    def syn_lr(self) -> torch.Tensor:
        return self.log_syn_lr.detach().exp()

    @property
    def lr_img(self) -> float:
        return self.opt_img.param_groups[0]["lr"]

    def recognizers(self) -> list[Judge]:
        """The recognition step's networks: trained on the real data (once per dataset, then cached)."""
        cfg = self.cfg
        seeds = tuple(RECOGNIZER_SEED + i for i in range(cfg.recognition_models))
        return trained_on_real_data(cfg, self.dataset, (cfg.recognizers,) * cfg.recognition_models,
                                    cfg.recognizer_epochs, self.device, seeds)

    def expert_logits(self) -> torch.Tensor:
        """Soft-label init (DATM): the logits of an expert at the last start epoch on each initial image, or
        averaged over crops of each canvas; where the expert picks another class, the logits of that class and
        of the item's own class swap places, so every soft label starts on its class."""
        theta = self.bank.epochs(0, self.cfg.max_start_epoch)[0].to(self.device)
        synthetic = self.synthetic
        if isinstance(synthetic, TextureCanvas):
            draw = synthetic.draw(self.cfg.seed, per_class=4 * synthetic.crops_per_canvas)
        else:
            draw = Draw(self.cfg.seed, torch.arange(len(synthetic.labels)))
        index = draw.index.to(self.device)
        items = len(synthetic.labels)
        with torch.no_grad():
            per_sample = self.flat.forward(theta, synthetic.take(draw)[0])
            logits = (torch.zeros(items, synthetic.num_classes, device=self.device).index_add_(0, index, per_sample)
                      / torch.bincount(index, minlength=items).unsqueeze(1))
            rows = torch.arange(items, device=self.device)
            own, top = logits[rows, synthetic.labels], logits.argmax(1)
            logits[rows, top], logits[rows, synthetic.labels] = own, logits[rows, top]
        return logits

    def _check_experts_fit(self, found: Found) -> None:
        """The experts must come from this dataset, resolution and model, or matching them means nothing."""
        spec, cfg = self.bank.spec, self.cfg
        mismatch = data_mismatch(found, self.bank.metadata)
        if mismatch:
            raise ConfigError(f"experts in {cfg.experts_path} were trained on {mismatch}; pass matching --data/--res "
                              f"or other --experts-dir")
        depth = resolve_depth(cfg.depth, found.res, found.res)
        if (cfg.width, depth) != (spec.width, spec.depth):
            raise ConfigError(f"experts in {cfg.experts_path} are ConvNets of width {spec.width}, depth {spec.depth}, "
                              f"not width {cfg.width}, depth {depth}; pass --width {spec.width} --depth {spec.depth} "
                              f"or other --experts-dir")

    # ---- one iteration -------------------------------------------------------------------------
    def step(self) -> dict:
        """One distillation iteration; returns its log record (with "skipped" if it was not finite)."""
        cfg = self.cfg
        expert, start_epoch, problem = self.draw_problem()
        result = match(cfg.grad_mode, self.student, self.synthetic, self.syn_lr, problem)
        if self.step_hook is not None:
            result = self.step_hook(self.iteration + 1, result)
        lr_grad = result.lr_grad * self.syn_lr  # chain rule through η = exp(log η)
        record = {"it": self.iteration + 1, "loss": float(result.loss), "syn_lr": float(self.syn_lr),
                  "lr_img": self.lr_img, "expert": expert, "start_epoch": start_epoch,
                  "grad_norm": float(result.pixel_grad.norm()), "lr_grad": float(lr_grad)}
        finite_labels = result.label_grad is None or bool(torch.isfinite(result.label_grad).all())
        if finite_labels and all(math.isfinite(record[k]) for k in ("loss", "grad_norm", "lr_grad")):
            self.bad_steps = 0
            self.good = self.capture()
            self.synthetic.pixels.grad = result.pixel_grad
            self.log_syn_lr.grad = lr_grad.reshape(())
            self.opt_img.step()
            if self.recognition is not None:
                record["recognition"] = self.recognition_steps()
            if cfg.clamp_pixels:
                self.project_pixels()
            self.opt_lr.step()
            if cfg.min_syn_lr:
                with torch.no_grad():
                    self.log_syn_lr.clamp_(min=math.log(cfg.min_syn_lr))
            if self.opt_label is not None:
                self.synthetic.label_logits.grad = result.label_grad
                self.opt_label.step()
            if self.ema_pixels is not None:
                # with a warm-up (as TensorFlow's ExponentialMovingAverage with num_updates), so the early
                # average follows the pixels instead of holding on to the initial set for ~1/(1 − decay) iterations
                decay = min(cfg.ema_decay, (1 + self.iteration) / (10 + self.iteration))
                self.ema_pixels.lerp_(self.synthetic.pixels.detach(), 1 - decay)
        else:
            # the last update led here: undo it and retry with smaller pixel steps
            self.bad_steps += 1
            self.restore(self.good)
            for group in self.opt_img.param_groups:
                group["lr"] *= LR_BACKOFF
            record.update(skipped="non-finite loss or gradient: restored the last good state",
                          lr_img=self.lr_img, bad_steps=self.bad_steps)
        self.iteration += 1
        return record

    def recognition_steps(self) -> float:
        """--recognition-steps Adam steps on the recognition objective; returns the last cross-entropy."""
        for _ in range(self.cfg.recognition_steps):
            with torch.enable_grad():
                loss, cross_entropy = self.recognition.loss(self.synthetic, self.space, random_seed(self.generator))
                self.synthetic.pixels.grad, = torch.autograd.grad(loss, self.synthetic.pixels)
            self.opt_rec.step()
        return float(cross_entropy)

    def project_pixels(self) -> None:
        """Move the pixels to the nearest ones a PNG can show (--clamp-pixels)."""
        with torch.no_grad():
            self.synthetic.pixels.copy_(self.space.project(self.synthetic.pixels, self.synthetic.periodic))

    def draw_problem(self) -> tuple[int, int, MatchProblem]:
        """(expert, start epoch, problem) of the next iteration, drawn from the run's generator."""
        cfg, g = self.cfg, self.generator
        expert = int(torch.randint(len(self.bank.paths), (1,), generator=g))
        start_epoch = int(torch.randint(cfg.min_start_epoch, self.start_epoch_bound(), (1,), generator=g))
        start, target = (t.to(self.device) for t in self.bank.epochs(expert, start_epoch,
                                                                       start_epoch + cfg.expert_epochs))
        seeds = [random_seed(g) for _ in range(cfg.syn_steps)]
        return expert, start_epoch, MatchProblem(start, target, seeds, cfg.match_loss, tuple(self.flat.numels))

    def start_epoch_bound(self) -> int:
        """The exclusive upper bound of this iteration's start epoch (grows over --start-ramp iterations)."""
        cfg = self.cfg
        if cfg.start_ramp == 0 or self.iteration >= cfg.start_ramp:
            return cfg.max_start_epoch
        span = cfg.max_start_epoch - cfg.min_start_epoch - 1
        return cfg.min_start_epoch + 1 + span * self.iteration // cfg.start_ramp

    def _live(self) -> dict[str, torch.Tensor]:
        """OptimState field → the tensor of this run it copies (absent: no soft labels / no EMA)."""
        live = {"pixels": self.synthetic.pixels, "log_syn_lr": self.log_syn_lr,
                "label_logits": self.synthetic.label_logits, "ema_pixels": self.ema_pixels}
        return {name: t for name, t in live.items() if t is not None}

    def _optimisers(self) -> dict[str, tuple[torch.optim.Optimizer, torch.Tensor, str]]:
        """OptimState optimiser field → (optimiser, the parameter it steps, the key of its state entry)."""
        optimisers = {"momentum_img": (self.opt_img, self.synthetic.pixels, "momentum_buffer"),
                      "momentum_lr": (self.opt_lr, self.log_syn_lr, "momentum_buffer"),
                      "momentum_label": (self.opt_label, self.synthetic.label_logits, "momentum_buffer"),
                      **{f"recognition_{key}": (self.opt_rec, self.synthetic.pixels, key)
                         for key in ("step", "exp_avg", "exp_avg_sq")}}
        return {name: entry for name, entry in optimisers.items() if entry[0] is not None}

    def capture(self) -> OptimState:
        """A copy of what an update changes."""
        buffers = {name: opt.state.get(param, {}).get(key) for name, (opt, param, key) in self._optimisers().items()}
        return OptimState(**{name: None if t is None else t.detach().clone()
                             for name, t in {**self._live(), **buffers}.items()})

    def restore(self, state: OptimState) -> None:
        """Put a captured state back (a buffer of None means: the optimiser has not stepped yet)."""
        with torch.no_grad():
            for name, t in self._live().items():
                t.copy_(getattr(state, name))
        for opt, param, _ in self._optimisers().values():
            opt.state.pop(param, None)
        for name, (opt, param, key) in self._optimisers().items():
            buf = getattr(state, name)
            if buf is not None:
                opt.state[param][key] = buf.clone()

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> Path:
        """Distil until cfg.iterations (resuming a checkpoint), then write the results; returns the result file."""
        cfg = self.cfg
        with RunLock(self.run_dir, "distill"):
            self._open_run()
            if self.iteration == 0:
                self.save_snapshot()
            bar = tqdm(total=cfg.iterations, initial=self.iteration, desc="distill", unit="it", dynamic_ncols=True,
                       disable=not distributed.is_main())
            started, grad_norms = time.time(), []
            while self.iteration < cfg.iterations:
                record = self.step()
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4f}", syn_lr=f"{record['syn_lr']:.2e}")
                self._log(record, grad_norms, time.time() - started)
                if self.bad_steps >= cfg.max_bad_steps:
                    self._stop_diverged(record)
                if self.iteration % cfg.snapshot_every == 0:
                    self.save_snapshot()
                if self.iteration % cfg.ckpt_every == 0 or self.iteration == cfg.iterations:
                    self.save_checkpoint()
                    self.save_result()
                    if self.on_checkpoint is not None and distributed.is_main():
                        self.on_checkpoint()
            bar.close()
        log.info("distilled %d iterations; results in %s", self.iteration, self.run_dir)
        return self.run_dir / RESULT

    def _open_run(self) -> None:
        """Continue a checkpoint made with the same options, refuse one made with others (unless --force)."""
        checkpoint = self.run_dir / CHECKPOINT
        if continue_existing(self.cfg, "distillation checkpoint", checkpoint.exists()):
            tensors, meta = load_tensors(checkpoint)
            if meta.get("kind") != "distill-checkpoint":
                raise CheckpointError(f"{checkpoint} is a {meta.get('kind')} file, not a distillation checkpoint; "
                                      f"move it away or add --force to start over")
            require_same_options(self.cfg, "the distillation", meta["config"])
            self.load_checkpoint(tensors, meta, checkpoint)
            log.info("resuming %s at iteration %d", self.run_dir, self.iteration)
            event = {"event": "resume", "it": self.iteration}
        else:
            result = self.run_dir / RESULT
            if result.exists() and not self.cfg.force:  # written only after a checkpoint: someone removed that
                raise CheckpointError(f"{self.run_dir} holds a distilled set ({RESULT}) but no {CHECKPOINT} to "
                                      f"continue it; use another --out, or add --force to replace it")
            event = {"event": "start"}
        distributed.barrier()  # under torchrun: every rank has read the folder before rank 0 changes it
        if distributed.is_main():
            if event["event"] == "start":
                # a fresh start: nothing of an earlier distillation in this folder may mix with this one
                discard([checkpoint, result, *(self.run_dir / SNAPSHOTS).glob("it_*.safetensors")])
            record_config(self.cfg, "distill")
            self.log.write(**event)
        distributed.barrier()

    def _log(self, record: dict, grad_norms: list[float], seconds: float) -> None:
        """Write every --log-every-th record and every skipped one, with gradient-norm stats since the last line."""
        if "skipped" not in record:
            grad_norms.append(record["grad_norm"])
        if self.iteration % self.cfg.log_every and "skipped" not in record:
            return
        if grad_norms:
            record.update(grad_norm_mean=sum(grad_norms) / len(grad_norms), grad_norm_max=max(grad_norms))
        if distributed.is_main():
            self.log.write(**record, seconds=round(seconds, 2))
        grad_norms.clear()

    def _stop_diverged(self, record: dict) -> None:
        """Save the good state (finite by construction) and stop with what to change."""
        first = self.iteration - self.bad_steps + 1
        self.bad_steps = 0  # a resumed run gets max_bad_steps fresh tries
        self.save_checkpoint()
        self.save_result()
        raise NumericalError(f"distillation diverged: {self.cfg.max_bad_steps} steps in a row with a non-finite loss "
                             f"or gradient (iterations {first}–{self.iteration}), even after lowering the pixel lr "
                             f"to {record['lr_img']:.3g}; the last good state is saved in {self.run_dir / CHECKPOINT}: "
                             f"re-run with a smaller --lr-img and/or --lr-lr to continue it")

    # ---- files ---------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a resumed run needs, as named tensors."""
        return {**self.capture().tensors("now"), **self.good.tensors("good"), "generator": self.generator.get_state()}

    def save_checkpoint(self) -> None:
        if not distributed.is_main():
            return  # every rank holds the same state; rank 0 writes it
        self._require_finite()
        meta = {"kind": "distill-checkpoint", "iteration": self.iteration, "config": self.cfg.to_dict(),
                "synthetic": self.synthetic.settings(), "lr_img": self.lr_img, "bad_steps": self.bad_steps}
        save_tensors(self.run_dir / CHECKPOINT, self.state_tensors(), meta)

    def load_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
        """Restore a checkpoint strictly: every tensor present with the shape this run has, nothing else."""
        layout = self._checkpoint_layout()
        problems = [f"missing {k}" for k, (_, required) in layout.items() if required and k not in tensors]
        problems += [f"unexpected {k}" for k in sorted(set(tensors) - set(layout))]
        problems += [f"{k} has shape {tuple(tensors[k].shape)}, expected {tuple(shape)}"
                     for k, (shape, _) in layout.items() if k in tensors and tensors[k].shape != shape]
        if problems:
            raise CheckpointError(f"{path} does not fit this run ({'; '.join(problems)}); it was written by another "
                                  f"texdistill version or for other data — add --force to start over")
        self.restore(OptimState.from_tensors(tensors, "now", self.device))
        self.good = OptimState.from_tensors(tensors, "good", self.device)
        self.generator.set_state(tensors["generator"])
        saved_lr_img = meta["lr_img"] if meta["config"].get("lr_img") == self.cfg.lr_img else self.cfg.lr_img
        for group in self.opt_img.param_groups:
            group["lr"] = saved_lr_img  # the guard's reductions survive a resume; a new --lr-img replaces them
        self.iteration, self.bad_steps = meta["iteration"], meta["bad_steps"]

    def _checkpoint_layout(self) -> dict[str, tuple[torch.Size, bool]]:
        """Checkpoint tensor name → (shape, required); momenta are absent before the first step."""
        layout = {"generator": (self.generator.get_state().shape, True)}
        for prefix in ("now", "good"):
            layout.update({f"{prefix}.{name}": (t.shape, True) for name, t in self._live().items()})
            layout.update({f"{prefix}.{name}": (torch.Size([]) if key == "step" else param.shape, False)
                           for name, (_, param, key) in self._optimisers().items()})
        return layout

    def _require_finite(self) -> None:
        if not all(torch.isfinite(t).all() for t in self.synthetic.state_tensors().values() if t.is_floating_point()) \
                or not torch.isfinite(self.log_syn_lr):
            raise NumericalError("refusing to save non-finite pixels or η (a bug: the guard should have restored "
                                 "the last good state); the previous checkpoint is intact")

    def save_snapshot(self) -> None:
        """The synthetic set as displayable uint8, for the evolution view."""
        if not distributed.is_main():
            return
        pixels = self.synthetic.displayable(self.space)
        save_tensors(self.run_dir / SNAPSHOTS / f"it_{self.iteration:06d}.safetensors",
                     {"pixels": pixels, "labels": self.synthetic.labels},
                     {"kind": "snapshot", "iteration": self.iteration, "synthetic": self.synthetic.settings()})

    def save_result(self) -> None:
        """The learned set (float tensors + η) and its PNG previews."""
        cfg = self.cfg
        if not distributed.is_main():
            return
        self._require_finite()
        meta = {"kind": "synthetic-set", "iteration": self.iteration, "synthetic": self.synthetic.settings(),
                "syn_lr": float(self.syn_lr), "model": self.bank.spec.to_dict(), "dataset": self.dataset.name,
                "class_names": self.dataset.class_names, "expert_lr": float(self.bank.metadata["lr"]),
                "recognizers": [cfg.recognizers] if cfg.recognition_lr else []}
        result = self.result_set()
        tensors = {**result.state_tensors(), **{f"space.{k}": v for k, v in self.space.state_dict().items()}}
        save_tensors(self.run_dir / RESULT, tensors, meta)
        for label, name in enumerate(self.dataset.class_names):
            for relative, image in result.previews(label, name, partial(result.displayable, self.space)).items():
                save_png(self.run_dir / relative, image)

    def result_set(self) -> SyntheticSet:
        """The set a run delivers: the last iterate, or with --ema-decay its moving average."""
        if self.ema_pixels is None:
            return self.synthetic
        return from_state(self.synthetic.settings(), {**self.synthetic.state_tensors(), "pixels": self.ema_pixels})


def run(cfg: DistillConfig) -> Path:
    return Distiller(cfg).run()
