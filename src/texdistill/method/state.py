"""What a distillation carries from one iteration to the next, and how it changes.

The state is the synthetic set's pixels (and soft labels), log η, the optimisers' buffers, the generator every
random choice comes from and the counters. `accept` applies one iteration's
update; `reject` is the guard: a non-finite loss or gradient puts back the state the last finite step started
from and halves the pixel lr. `tensors()` / `load()` are the checkpoint: a strict layout, resumed bit-exactly.

η is kept positive by construction: the optimiser works on log η. Its SGD lr is scaled so that, near the
initial η₀, a step changes η as MTT's plain SGD on η with lr `lr_lr` would (Δη ≈ η² Δlog η ⇒ lr_log = lr_lr / η₀²).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from texdistill.config import DistillConfig
from texdistill.data import PixelSpace
from texdistill.errors import CheckpointError, NumericalError
from texdistill.method.matching import MatchResult
from texdistill.method.synthetic import SyntheticSet

LR_BACKOFF = 0.5  # the pixel lr is multiplied by this after every non-finite step
ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # torch.optim.Adam's per-parameter state entries


@dataclass
class OptimState:
    """What an update changes: pixels, log η, soft labels and the optimisers' buffers (None when absent:
    before the first step, or without soft labels / recognition)."""

    pixels: torch.Tensor
    log_syn_lr: torch.Tensor
    momentum_lr: torch.Tensor | None
    momentum_img: torch.Tensor | None = None  # SGD's (--optimizer-img sgd)
    label_logits: torch.Tensor | None = None
    momentum_label: torch.Tensor | None = None
    recognition_step: torch.Tensor | None = None  # the recognition step's Adam state (--recognition-lr)
    recognition_exp_avg: torch.Tensor | None = None
    recognition_exp_avg_sq: torch.Tensor | None = None
    coefficients: torch.Tensor | None = None  # --parameterisation fourier: what the pixels are rendered from
    adam_img_step: torch.Tensor | None = None  # --optimizer-img adam: its state (instead of momentum_img)
    adam_img_exp_avg: torch.Tensor | None = None
    adam_img_exp_avg_sq: torch.Tensor | None = None

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {f"{prefix}.{k}": v for k, v in named.items() if v is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str, device: torch.device) -> "OptimState":
        def get(name: str) -> torch.Tensor | None:
            t = tensors.get(f"{prefix}.{name}")
            return None if t is None else t.to(device)

        return cls(**{f.name: get(f.name) for f in dataclasses.fields(cls)})


class DistillState:
    """The synthetic set, η, the optimisers, the guard and the counters of one distillation."""

    def __init__(self, cfg: DistillConfig, synthetic: SyntheticSet, space: PixelSpace, syn_lr_init: float,
                 generator: torch.Generator, device: torch.device):
        self.cfg, self.synthetic, self.space, self.generator = cfg, synthetic, space, generator
        self.opt_label = None
        if synthetic.label_logits is not None:
            self.opt_label = torch.optim.SGD([synthetic.label_logits], lr=cfg.lr_label, momentum=0.9)
        self.log_syn_lr = torch.nn.Parameter(torch.tensor(math.log(syn_lr_init), device=device))
        self.opt_img = (torch.optim.Adam([synthetic.learned], lr=cfg.lr_img) if cfg.optimizer_img == "adam" else
                        torch.optim.SGD([synthetic.learned], lr=cfg.lr_img, momentum=cfg.momentum_img))
        self.opt_lr = torch.optim.SGD([self.log_syn_lr], lr=cfg.lr_lr / syn_lr_init ** 2, momentum=0.5)
        self.opt_rec = torch.optim.Adam([synthetic.learned], lr=cfg.recognition_lr) if cfg.recognition_lr else None
        self.iteration = 0
        self.bad_steps = 0
        self.good = self.capture()  # the state the last finite step started from

    @property
    def syn_lr(self) -> torch.Tensor:
        return self.log_syn_lr.detach().exp()

    @property
    def lr_img(self) -> float:
        return self.opt_img.param_groups[0]["lr"]

    # ---- one iteration's update ----------------------------------------------------------------
    def accept(self, result: MatchResult, lr_grad: torch.Tensor,
               recognition: Callable[[], torch.Tensor] | None = None) -> dict:
        """Apply a finite iteration: a step of --optimizer-img on what is learned (then the recognition steps,
        when given: a function returning the objective to descend), on log η and on the soft labels; clamp.
        Returns what to add to the log record."""
        cfg, synthetic, record = self.cfg, self.synthetic, {}
        self.bad_steps = 0
        self.good = self.capture()
        synthetic.learned.grad = synthetic.pull_back(result.pixel_grad)
        self.log_syn_lr.grad = lr_grad.reshape(())
        self.opt_img.step()
        synthetic.render()
        for _ in range(cfg.recognition_steps if recognition is not None else 0):
            with torch.enable_grad():
                loss, record["recognition"] = recognition()
                synthetic.learned.grad = synthetic.pull_back(torch.autograd.grad(loss, synthetic.pixels)[0])
            self.opt_rec.step()
            synthetic.render()
        if cfg.clamp_pixels:
            self.project_pixels()
        self.opt_lr.step()
        if self.opt_label is not None:
            self.synthetic.label_logits.grad = result.label_grad
            self.opt_label.step()
        return {k: float(v) for k, v in record.items()}

    def reject(self) -> dict:
        """The last update led to a non-finite step: undo it, retry with smaller pixel steps; the log record."""
        self.bad_steps += 1
        self.restore(self.good)
        for group in self.opt_img.param_groups:
            group["lr"] *= LR_BACKOFF
        return {"skipped": "non-finite loss or gradient: restored the last good state", "lr_img": self.lr_img,
                "bad_steps": self.bad_steps}

    def project_pixels(self) -> None:
        """Move the pixels to the nearest ones a PNG can show (--clamp-pixels)."""
        with torch.no_grad():
            self.synthetic.assign_pixels(self.space.project(self.synthetic.pixels, self.synthetic.periodic))

    # ---- capture / restore ---------------------------------------------------------------------
    def _live(self) -> dict[str, torch.Tensor]:
        """OptimState field → the tensor of this run it copies (absent: no soft labels / free pixels)."""
        live = {"pixels": self.synthetic.pixels, "coefficients": self.synthetic.coefficients,
                "log_syn_lr": self.log_syn_lr, "label_logits": self.synthetic.label_logits}
        return {name: t for name, t in live.items() if t is not None}

    def _optimisers(self) -> dict[str, tuple[torch.optim.Optimizer, torch.Tensor, str]]:
        """OptimState optimiser field → (optimiser, the parameter it steps, the key of its state entry)."""
        image_keys = ({f"adam_img_{key}": key for key in ADAM_STATE} if isinstance(self.opt_img, torch.optim.Adam)
                      else {"momentum_img": "momentum_buffer"})
        optimisers = {**{name: (self.opt_img, self.synthetic.learned, key) for name, key in image_keys.items()},
                      "momentum_lr": (self.opt_lr, self.log_syn_lr, "momentum_buffer"),
                      "momentum_label": (self.opt_label, self.synthetic.label_logits, "momentum_buffer"),
                      **{f"recognition_{key}": (self.opt_rec, self.synthetic.learned, key) for key in ADAM_STATE}}
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

    # ---- the checkpoint ------------------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything a resumed run needs, as named tensors."""
        self.require_finite()
        return {**self.capture().tensors("now"), **self.good.tensors("good"), "generator": self.generator.get_state()}

    def metadata(self) -> dict:
        return {"iteration": self.iteration, "lr_img": self.lr_img, "bad_steps": self.bad_steps}

    def load(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
        """Restore a checkpoint strictly: every tensor present with the shape this run has, nothing else."""
        layout = self._layout()
        problems = [f"missing {k}" for k, (_, required) in layout.items() if required and k not in tensors]
        problems += [f"unexpected {k}" for k in sorted(set(tensors) - set(layout))]
        problems += [f"{k} has shape {tuple(tensors[k].shape)}, expected {tuple(shape)}"
                     for k, (shape, _) in layout.items() if k in tensors and tensors[k].shape != shape]
        if problems:
            raise CheckpointError(f"{path} does not fit this run ({'; '.join(problems)}); it was written by another "
                                  f"texdistill version or for other data — add --force to start over")
        device = self.synthetic.pixels.device
        self.restore(OptimState.from_tensors(tensors, "now", device))
        self.good = OptimState.from_tensors(tensors, "good", device)
        self.generator.set_state(tensors["generator"])
        saved_lr_img = meta["lr_img"] if meta["config"].get("lr_img") == self.cfg.lr_img else self.cfg.lr_img
        for group in self.opt_img.param_groups:
            group["lr"] = saved_lr_img  # the guard's reductions survive a resume; a new --lr-img replaces them
        self.iteration, self.bad_steps = meta["iteration"], meta["bad_steps"]

    def _layout(self) -> dict[str, tuple[torch.Size, bool]]:
        """Checkpoint tensor name → (shape, required); optimiser buffers are absent before the first step."""
        layout = {"generator": (self.generator.get_state().shape, True)}
        for prefix in ("now", "good"):
            layout.update({f"{prefix}.{name}": (t.shape, True) for name, t in self._live().items()})
            layout.update({f"{prefix}.{name}": (torch.Size([]) if key == "step" else param.shape, False)
                           for name, (_, param, key) in self._optimisers().items()})
        return layout

    def require_finite(self) -> None:
        if not all(torch.isfinite(t).all() for t in self.synthetic.state_tensors().values() if t.is_floating_point()) \
                or not torch.isfinite(self.log_syn_lr):
            raise NumericalError("refusing to save non-finite pixels or η (a bug: the guard should have restored "
                                 "the last good state); the previous checkpoint is intact")
