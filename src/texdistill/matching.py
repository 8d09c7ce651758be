"""Trajectory matching: the student's unrolled training from an expert checkpoint and its gradient.

Student: θ_{i+1} = θ_i − η ∇ℓ(θ_i; X_i) for i < N, from θ_0 = θ*_t; loss L = ‖θ_N − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖².
The gradient of L with respect to the synthetic pixels and η is computed by a *gradient mode*; every mode
has the signature of `unroll_gradient` and is registered in GRADIENT_MODES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from texdistill.augment import DSAConfig, augment
from texdistill.errors import ConfigError
from texdistill.models import FlatParams, classification_loss
from texdistill.synthetic import SyntheticSet


@dataclass
class Student:
    """A network run functionally from a flat θ, with the DSA its synthetic batches get."""

    flat: FlatParams
    dsa: DSAConfig | None

    def loss(self, theta: torch.Tensor, x: torch.Tensor, targets: torch.Tensor, seed: int) -> torch.Tensor:
        """Training loss ℓ(θ; x) on a DSA view of x determined by `seed`."""
        return classification_loss(self.flat.forward(theta, augment(x, self.dsa, dsa_seed(seed))), targets)


def dsa_seed(step_seed: int) -> int:
    """The DSA seed of a student step, distinct from the seed of its synthetic draw."""
    return (step_seed * 0x9E3779B97F4A7C15 + 1) % 2**62


@dataclass
class MatchProblem:
    """One trajectory-matching problem: expert start/target parameters and the seeds of the N steps."""

    start: torch.Tensor  # (P,) θ*_t
    target: torch.Tensor  # (P,) θ*_{t+M}
    step_seeds: list[int]  # one per student step: its synthetic draw and its DSA


@dataclass
class MatchResult:
    loss: torch.Tensor  # () the normalised matching loss
    pixel_grad: torch.Tensor  # like synthetic.pixels
    lr_grad: torch.Tensor  # () ∂L/∂η


def matching_loss(theta_end: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖θ_N − θ*‖² / ‖θ_0 − θ*‖²: 1 means the student got nowhere, 0 means it landed on the expert."""
    return (theta_end - target).pow(2).sum() / (start - target).pow(2).sum()


def unroll_gradient(student: Student, synthetic: SyntheticSet, syn_lr: torch.Tensor,
                    problem: MatchProblem) -> MatchResult:
    """Reference mode: keep the create_graph graph of all N steps and backpropagate once (memory O(N))."""
    eta = syn_lr.detach().clone().requires_grad_(True)
    theta = problem.start.detach().clone().requires_grad_(True)
    for seed in problem.step_seeds:
        x, targets = synthetic.sample(seed)
        grad, = torch.autograd.grad(student.loss(theta, x, targets, seed), theta, create_graph=True)
        theta = theta - eta * grad
    loss = matching_loss(theta, problem.start, problem.target)
    pixel_grad, lr_grad = torch.autograd.grad(loss, [synthetic.pixels, eta])
    return MatchResult(loss.detach(), pixel_grad, lr_grad)


GradientMode = Callable[[Student, SyntheticSet, torch.Tensor, MatchProblem], MatchResult]
GRADIENT_MODES: dict[str, GradientMode] = {"unroll": unroll_gradient}


def match(mode: str, student: Student, synthetic: SyntheticSet, syn_lr: torch.Tensor,
          problem: MatchProblem) -> MatchResult:
    """Matching loss and its gradients to the pixels and η, computed by gradient `mode`."""
    if mode not in GRADIENT_MODES:
        raise ConfigError(f"unknown --grad-mode '{mode}'; choose one of {', '.join(GRADIENT_MODES)}")
    with torch.enable_grad():
        return GRADIENT_MODES[mode](student, synthetic, syn_lr, problem)
