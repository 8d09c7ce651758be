"""The distillation algorithm: learn the synthetic set and the student lr η by matching expert trajectories.

Each iteration draws a problem (an expert, a start epoch, the seeds of N student steps), computes the matching
loss and its gradient to the pixels and η (method/matching.py), and updates the state (method/state.py) — or,
if anything came out non-finite, puts the last good state back. The loop over iterations and the run folder
(lock, resume, checkpoints, snapshots, result, log) are the stage's: stages/distill.py and stages/outputs.py;
the set's file format is method/setfile.py.
"""

from __future__ import annotations

import logging
import math

import torch

from texdistill import distributed, hardware
from texdistill.config import DistillConfig
from texdistill.data import find_dataset, load_dataset
from texdistill.method.augment import dsa_of
from texdistill.method.experts import ExpertBank
from texdistill.method.judges import Judge, trained_on_real_data
from texdistill.method.matching import MatchProblem, Student, kept_steps_on, match, step_graph_bytes
from texdistill.method.models import FlatParams
from texdistill.method.recognition import RECOGNIZER_RECIPE, RECOGNIZER_SEED, RecognitionTerm, train_recognizer
from texdistill.method.state import DistillState
from texdistill.method.synthetic import build_synthetic
from texdistill.method.training import random_seed

log = logging.getLogger(__name__)


class Distiller:
    """The algorithm: draw a problem, match, update (`step()`); the loop that runs it is stages/distill.py."""

    def __init__(self, cfg: DistillConfig):
        self.cfg = cfg
        self.device = cfg.torch_device()
        hardware.exact_float32()
        hardware.deterministic(cfg.deterministic)
        log.info("device: %s", hardware.describe(self.device))
        self.bank = ExpertBank.open(cfg.experts_path)
        self.bank.require_fit(find_dataset(**cfg.dataset_options()), cfg)  # before decoding: a misfit caches nothing
        self.dataset = distributed.main_first(lambda: load_dataset(**cfg.dataset_options(), cache_dir=cfg.cache_path))
        self.space = self.bank.space()
        self.space.require_zca(cfg.zca, f"the experts in {cfg.experts_path}")
        self.flat = FlatParams(self.bank.spec.build().to(self.device))
        self.student = Student(self.flat, dsa_of(cfg), compile=cfg.compile_kernels())
        # every random choice of the run (init, experts, start epochs, step seeds) comes from this generator
        generator = torch.Generator().manual_seed(cfg.seed)
        synthetic = build_synthetic(cfg.texture, cfg.init, self.dataset, self.space, generator, cfg.ipc,
                                    cfg.canvas_size, cfg.canvas_samples, cfg.batch_syn,
                                    cfg.fourier_alpha if cfg.parameterisation == "fourier" else None).to(self.device)
        if cfg.clamp_pixels:  # noise starts displayable too
            synthetic.assign_pixels(self.space.project(synthetic.pixels, synthetic.periodic))
        if cfg.soft_labels:  # DATM: an expert's logits at the last start epoch, each on its own class
            theta = self.bank.epochs(0, cfg.max_start_epoch)[0].to(self.device)
            synthetic.use_soft_labels(synthetic.expert_logits(self.flat, theta))
        self.state = DistillState(cfg, synthetic, self.space, cfg.syn_lr_init or float(self.bank.metadata["lr"]),
                                  generator, self.device)
        rows = distributed.my_rows(len(synthetic.draw(0).index))  # this process's images per student step
        self.student.kept_steps = kept_steps_on(self.device, cfg.kept_steps, cfg.syn_steps,
                                                step_graph_bytes(self.bank.spec, rows.stop - rows.start),
                                                self.student.compile)
        if cfg.grad_mode != "unroll":
            log.info("%s keeps the graphs of its last %d of %d student steps (--kept-steps %s)", cfg.grad_mode,
                     self.student.kept_steps, cfg.syn_steps, cfg.kept_steps)
        self.recognition = None
        if cfg.recognition_lr:
            self.recognition = RecognitionTerm(self.recognizers(), cfg.recognition_prior, cfg.recognition_crops,
                                               dsa_of(cfg))

    @property
    def synthetic(self):
        return self.state.synthetic

    def recognizers(self) -> list[Judge]:
        """The recognition step's networks: trained on the real data (once per dataset, then cached)."""
        cfg = self.cfg
        seeds = tuple(RECOGNIZER_SEED + i for i in range(cfg.recognition_models))
        return trained_on_real_data(cfg, self.dataset, (cfg.recognizers,) * cfg.recognition_models,
                                    cfg.recognizer_epochs, self.device, seeds, RECOGNIZER_RECIPE, train_recognizer)

    # ---- one iteration -------------------------------------------------------------------------
    def step(self) -> dict:
        """One distillation iteration; returns its log record (with "skipped" if it was not finite)."""
        state = self.state
        expert, start_epoch, problem = self.draw_problem()
        result = match(self.cfg.grad_mode, self.student, state.synthetic, state.syn_lr, problem)
        lr_grad = result.lr_grad * state.syn_lr  # chain rule through η = exp(log η)
        record = {"it": state.iteration + 1, "loss": float(result.loss), "syn_lr": float(state.syn_lr),
                  "lr_img": state.lr_img, "expert": expert, "start_epoch": start_epoch,
                  "grad_norm": float(result.pixel_grad.norm()), "lr_grad": float(lr_grad)}
        finite_labels = result.label_grad is None or bool(torch.isfinite(result.label_grad).all())
        if finite_labels and all(math.isfinite(record[k]) for k in ("loss", "grad_norm", "lr_grad")):
            record.update(state.accept(result, lr_grad, self._recognition_loss if self.recognition else None))
        else:
            record.update(state.reject())
        state.iteration += 1
        return record

    def _recognition_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.recognition.loss(self.state.synthetic, self.space, random_seed(self.state.generator))

    def draw_problem(self) -> tuple[int, int, MatchProblem]:
        """(expert, start epoch, problem) of the next iteration, drawn from the run's generator."""
        cfg, g = self.cfg, self.state.generator
        expert = int(torch.randint(len(self.bank.paths), (1,), generator=g))
        start_epoch = int(torch.randint(cfg.min_start_epoch, cfg.max_start_epoch, (1,), generator=g))
        start, target = (t.to(self.device) for t in self.bank.epochs(expert, start_epoch,
                                                                       start_epoch + cfg.expert_epochs))
        seeds = [random_seed(g) for _ in range(cfg.syn_steps)]
        return expert, start_epoch, MatchProblem(start, target, seeds, cfg.match_loss, tuple(self.flat.numels))
