"""Trajectory matching: the student's training from an expert checkpoint and the gradient through it.

Student: θ_{i+1} = θ_i − η g_i, g_i = ∇_θ ℓ(θ_i; X_i) for i < N, from θ_0 = θ*_t; loss L(θ_N), by default
MTT's ‖θ_N − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖² (MATCH_LOSSES: one function of θ_N and the problem each; a new
loss is one function and one registry line, and every mode below differentiates it). The gradient of L with respect to the synthetic pixels and η is
computed by a *gradient mode*; every mode has the signature of `unroll_gradient` and is registered in
GRADIENT_MODES:

- `unroll`: keeps the create_graph graph of all N steps (the reference; memory grows with N).
- `remat` (exact): a forward pass without graph that keeps only θ_i, then an adjoint sweep i = N−1…0 that
  replays step i from its seed (bit-exact: the draw and the DSA of a step depend on nothing else) and takes
  one vector–Hessian product: λ_i = λ_{i+1} − η H_θθ λ_{i+1}, ∂L/∂X −= η ∂⟨g_i, λ_{i+1}⟩/∂X,
  ∂L/∂η −= ⟨λ_{i+1}, g_i⟩. Peak memory: one step's graph, plus the N vectors θ_i (P floats each, kept on the
  run's device: small next to a step's graph).
- `first-order` (approximate): the same sweep without the H_θθ term, i.e. λ_i = λ_N for every step.

Both sweeps can skip replays: the last `Student.kept_steps` steps (--kept-steps) keep the graph their forward
pass built and give their products from it (KeptStep), at one step graph of memory each.

With learned soft labels (targets Y = softmax of the set's label logits) every mode also returns ∂L/∂logits:
the replayed step's product differentiates ⟨g_i, λ_{i+1}⟩ with respect to Y as well (H_yθ λ), pulled back
through the softmax like the view's product through the crops and DSA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from texdistill import distributed, hardware, names
from texdistill.errors import ConfigError
from texdistill.method.augment import DSAConfig, augment
from texdistill.method.kernels import COMPILABLE_KERNELS, EAGER_KERNELS, gradient_with_graph, graph_products
from texdistill.method.models import FlatParams, ModelSpec, classification_loss, convnet_cost
from texdistill.method.synthetic import SyntheticSet

log = logging.getLogger(__name__)




COMPILE_BACKEND = "inductor"  # torch.compile's default; tests trace with "aot_eager", which skips code generation



@dataclass
class Student:
    """A network run functionally from a flat θ, with the DSA its synthetic batches get.

    `grad`, `hessian_product` and `cross_product` are the per-step kernels of `remat` and `first-order`;
    `compile=True` runs them through torch.compile (falling back to eager, with a warning, if it fails).
    """

    flat: FlatParams
    dsa: DSAConfig | None
    compile: bool = False
    kept_steps: int = 0  # remat/first-order: the last this many steps keep their graph from the forward pass
    _kernels: dict[str, Callable] = field(default_factory=dict, init=False, repr=False)

    def view(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """The DSA view (B, C, H, W) of a synthetic batch x that student step `seed` trains on."""
        # in plain NCHW strides: crops gathered from (B, H, W, C) look channels-last when C = 1, which makes
        # the convolutions emit channels-last maps, and forward-mode group norm (cross_product) rejects those
        return augment(x, self.dsa, dsa_seed(seed)).clone(memory_format=torch.contiguous_format)

    def loss(self, theta: torch.Tensor, x: torch.Tensor, targets: torch.Tensor, seed: int) -> torch.Tensor:
        """Training loss ℓ(θ; x) on the DSA view of x determined by `seed`."""
        return self.view_loss(theta, self.view(x, seed), targets)

    def view_loss(self, theta: torch.Tensor, view: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss ℓ(θ; view) on an already augmented batch."""
        return classification_loss(self.flat.forward(theta, view), targets)

    # ---- per-step kernels: pure functions of tensors, no graph leaves them -----------------------
    def grad(self, theta: torch.Tensor, view: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """g = ∇_θ ℓ(θ; view), shape (P,)."""
        return self._run("grad", theta, view, targets)

    def hessian_product(self, theta: torch.Tensor, view: torch.Tensor, targets: torch.Tensor,
                        lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(g, H_θθ λ, H_xθ λ, H_yθ λ): the gradient and the vector–Hessian product ∂⟨g, λ⟩/∂(θ, view, targets);
        the last is None for hard labels."""
        return self._run("hessian_product", theta, view, targets, lam)

    def cross_product(self, theta: torch.Tensor, view: torch.Tensor, targets: torch.Tensor,
                      lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(H_xθ λ, H_yθ λ) = ∂⟨g, λ⟩/∂(view, targets) without H_θθ λ: what `first-order` needs."""
        return self._run("cross_product", theta, view, targets, lam)

    def _run(self, name: str, *args: torch.Tensor):
        if not self.compile:
            return EAGER_KERNELS[name](self.view_loss, *args)
        if name not in self._kernels:
            self._kernels[name] = torch.compile(partial(COMPILABLE_KERNELS[name], self.view_loss), dynamic=False,
                                                backend=COMPILE_BACKEND)
        from torch._dynamo.exc import TorchDynamoException  # loaded by torch.compile anyway

        try:
            with torch.no_grad():
                return self._kernels[name](*args)
        except TorchDynamoException as exc:  # e.g. no C++ compiler; raised by the first call
            log.warning("torch.compile failed (%s); continuing without it (--compile off skips it)",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            self.compile = False
            return self._run(name, *args)


KEPT_MEMORY_SHARE = 0.25  # --kept-steps auto: the step graphs kept may take this share of the device's memory


def step_graph_bytes(spec: ModelSpec, batch: int, itemsize: int = 4) -> int:
    """Memory one student step's graph holds (forward and create_graph backward of `batch` images): 2·B·A + 2·P
    values (tools/estimate.py; measured 1.94·B·A on CPU)."""
    cost = convnet_cost(spec)
    return (2 * batch * cost.activations + 2 * cost.params) * itemsize


def kept_steps_for(option: str | int, syn_steps: int, step_bytes: int, memory_bytes: int) -> int:
    """How many of the last student steps keep their graph (--kept-steps): the number given, or with 'auto' as
    many as fit in KEPT_MEMORY_SHARE of the device's memory; at most syn_steps."""
    if str(option) == "auto":
        return min(syn_steps, int(KEPT_MEMORY_SHARE * memory_bytes) // max(step_bytes, 1))
    return min(syn_steps, int(option))


def kept_steps_on(device: torch.device, option: str | int, syn_steps: int, step_bytes: int, compiled: bool) -> int:
    """kept_steps_for on `device` (its total memory: the same K when a run resumes on the machine); none with
    --compile, whose kernels cannot keep an autograd graph."""
    return 0 if compiled else kept_steps_for(option, syn_steps, step_bytes, hardware.device_memory(device))


def dsa_seed(step_seed: int) -> int:
    """The DSA seed of a student step, distinct from the seed of its synthetic draw."""
    return (step_seed * 0x9E3779B97F4A7C15 + 1) % 2**62


# ---- matching losses: L(θ_N) of one problem; every gradient mode differentiates whichever is chosen ------
MatchLoss = Callable[[torch.Tensor, "MatchProblem"], torch.Tensor]


def normalized_distance(theta_end: torch.Tensor, problem: "MatchProblem") -> torch.Tensor:
    """MTT's ‖θ_N − θ*‖² / ‖θ_0 − θ*‖²: 1 means the student got nowhere, 0 means it landed on the expert."""
    return (theta_end - problem.target).pow(2).sum() / (problem.start - problem.target).pow(2).sum()


def per_layer_distance(theta_end: torch.Tensor, problem: "MatchProblem") -> torch.Tensor:
    """The same ratio per parameter tensor, averaged over tensors: every layer counts alike, however large."""
    ends, starts, targets = (v.split(problem.layers) for v in (theta_end, problem.start, problem.target))
    ratios = [(e - t).pow(2).sum() / (s - t).pow(2).sum().clamp_min(1e-30) for e, s, t in zip(ends, starts, targets)]
    return torch.stack(ratios).mean()


MATCH_LOSSES: dict[str, MatchLoss] = {"normalized": normalized_distance, "per-layer": per_layer_distance}


@dataclass
class MatchProblem:
    """One trajectory-matching problem: expert start/target parameters, the seeds of the N steps, the loss."""

    start: torch.Tensor  # (P,) θ*_t
    target: torch.Tensor  # (P,) θ*_{t+M}
    step_seeds: list[int]  # one per student step: its synthetic draw and its DSA
    loss_name: str = "normalized"  # a key of MATCH_LOSSES
    layers: tuple[int, ...] = ()  # sizes of the parameter tensors in θ (FlatParams.numels), for per-layer losses

    def loss(self, theta_end: torch.Tensor) -> torch.Tensor:
        """The matching loss L(θ_N) of this problem."""
        if self.loss_name not in MATCH_LOSSES:
            raise ConfigError(f"unknown --match-loss '{self.loss_name}'; choose one of {', '.join(MATCH_LOSSES)}")
        return MATCH_LOSSES[self.loss_name](theta_end, self)


@dataclass
class MatchResult:
    loss: torch.Tensor  # () the normalised matching loss
    pixel_grad: torch.Tensor  # like synthetic.pixels
    lr_grad: torch.Tensor  # () ∂L/∂η
    label_grad: torch.Tensor | None = None  # like synthetic.label_logits (soft labels only)


def student_update(theta: torch.Tensor, eta: torch.Tensor, grad_: torch.Tensor) -> torch.Tensor:
    """One student step θ_{i+1} = θ_i − η g_i (the adjoint sweeps of remat/first-order are its derivative)."""
    return theta - eta * grad_


def unroll_gradient(student: Student, synthetic: SyntheticSet, syn_lr: torch.Tensor,
                    problem: MatchProblem) -> MatchResult:
    """Reference mode: keep the create_graph graph of all N steps and backpropagate once (memory O(N))."""
    eta = syn_lr.detach().clone().requires_grad_(True)
    theta = problem.start.detach().clone().requires_grad_(True)
    for seed in problem.step_seeds:
        x, targets = synthetic.sample(seed)
        grad_, = torch.autograd.grad(student.loss(theta, x, targets, seed), theta, create_graph=True)
        theta = student_update(theta, eta, grad_)
    loss = problem.loss(theta)
    soft = [] if synthetic.label_logits is None else [synthetic.label_logits]
    pixel_grad, lr_grad, *label_grad = torch.autograd.grad(loss, [synthetic.pixels, eta, *soft])
    return MatchResult(loss.detach(), pixel_grad, lr_grad, *label_grad)


@dataclass
class KeptStep:
    """A step of the forward pass whose graph was kept (--kept-steps): the sweep takes its products from it
    instead of replaying the step. Exact like a replay; the trajectory rounds a little differently, as its
    g_i comes from the create_graph backward (other group-norm kernels than the graph-free one)."""

    step: "ReplayedStep"
    graph: tuple | None  # (g_i with the graph of its computation, the θ_i leaf, the view/soft-target leaves)

    def products(self, lam: torch.Tensor, with_theta: bool) -> tuple[torch.Tensor | None, ...]:
        """(g, H_θθ λ or None, H_xθ λ, H_yθ λ or None), as kernels.graph_products; frees the graph."""
        graph, self.graph = self.graph, None
        return graph_products(*graph, lam, with_theta)


def student_trajectory(student: Student, synthetic: SyntheticSet, eta: torch.Tensor,
                       problem: MatchProblem) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, dict]:
    """θ_0 … θ_{N−1}, θ_N, Σ_i g_i of the student, and {i: KeptStep} of its last `student.kept_steps` steps.

    The other steps run without a graph. θ_0 … θ_{N−1} stay on the run's device: N parameter vectors
    (80 × 1.3 MB for ConvNet-3 w128) are small next to one step's activations, and a host copy would cost two
    blocking transfers per step. Under torchrun each rank computes the gradient of its slice of the batch and
    the slices are summed, so every rank follows the same trajectory.
    """
    theta = problem.start.detach()
    thetas, grad_sum, kept = [], torch.zeros_like(theta), {}
    first_kept = len(problem.step_seeds) - student.kept_steps
    with torch.no_grad():
        for i, seed in enumerate(problem.step_seeds):
            thetas.append(theta)
            if i >= first_kept:
                with torch.enable_grad():  # the view's graph back to the pixels is kept too
                    step = replayed_step(student, synthetic, seed)
                    kept[i] = KeptStep(step, gradient_with_graph(student.view_loss, theta, step.view, step.targets))
                g = kept[i].graph[0].detach()
            else:
                step = replayed_step(student, synthetic, seed)
                g = student.grad(theta, step.view, step.targets)
            g = distributed.all_reduce_sum(g * step.weight)
            grad_sum += g
            theta = student_update(theta, eta, g)
    return thetas, theta, grad_sum, kept


def loss_and_adjoint(theta_end: torch.Tensor, problem: MatchProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """L and λ_N = ∂L/∂θ_N."""
    theta_end = theta_end.detach().requires_grad_(True)
    loss = problem.loss(theta_end)
    lam, = torch.autograd.grad(loss, theta_end)
    return loss.detach(), lam


@dataclass
class ReplayedStep:
    """One student step's batch, as this process trains on it."""

    view: torch.Tensor  # (b, C, H, W) DSA view of this rank's rows of the step's synthetic batch
    targets: torch.Tensor  # (b,) or (b, K)
    weight: float  # b / B: this slice's share of the batch-mean loss
    pixels_of: Callable[[torch.Tensor], torch.Tensor]  # pull-back of a view cotangent to the pixels
    labels_of: Callable[[torch.Tensor], torch.Tensor]  # pull-back of a soft-target cotangent to the label logits


def replayed_step(student: Student, synthetic: SyntheticSet, seed: int) -> ReplayedStep:
    """Step `seed`'s batch re-drawn and re-augmented (bit-exact), cut to this rank's rows under torchrun.

    Every rank draws and augments the whole batch (cheap next to the network), so the per-sample DSA
    parameters are those of a single-process run, then runs the network on its own contiguous slice.
    """
    x, targets = synthetic.sample(seed)
    view = student.view(x, seed)
    rows = distributed.my_rows(len(view))
    view, targets = view[rows], targets[rows]

    def pixels_of(cotangent: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(view, synthetic.pixels, cotangent)[0]

    def labels_of(cotangent: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(targets, synthetic.label_logits, cotangent)[0]

    return ReplayedStep(view.detach(), targets.detach(), view.shape[0] / len(x), pixels_of, labels_of)


def _label_grad_buffer(synthetic: SyntheticSet) -> torch.Tensor | None:
    return None if synthetic.label_logits is None else torch.zeros_like(synthetic.label_logits)


def _summed(grad_: torch.Tensor | None) -> torch.Tensor | None:
    return None if grad_ is None else distributed.all_reduce_sum(grad_)


def step_products(i: int, kept: dict, student: Student, synthetic: SyntheticSet, problem: MatchProblem,
                  thetas: list[torch.Tensor], lam: torch.Tensor,
                  with_theta: bool) -> tuple[ReplayedStep, tuple[torch.Tensor | None, ...]]:
    """Step i's batch and (g, H_θθ λ, H_xθ λ, H_yθ λ), H_yθ λ None for hard labels; without `with_theta` the
    first two are not computed (None, or g where a kept graph has it): first-order needs neither. From the graph
    the forward pass kept (taken out of `kept`, which frees it), or by replaying the step at θ_i."""
    if i in kept:
        return kept[i].step, kept.pop(i).products(lam, with_theta)
    step = replayed_step(student, synthetic, problem.step_seeds[i])
    if with_theta:
        return step, student.hessian_product(thetas[i], step.view, step.targets, lam)
    return step, (None, None, *student.cross_product(thetas[i], step.view, step.targets, lam))


def remat_gradient(student: Student, synthetic: SyntheticSet, syn_lr: torch.Tensor,
                   problem: MatchProblem) -> MatchResult:
    """Exact, with one step's graph in memory whatever N: forward without graph, then an adjoint sweep that
    replays each step.

    Under torchrun: H_θθλ is summed over the ranks' slices every step (λ stays the same on every rank);
    the pixel and η gradients are partial sums, added up once at the end.
    """
    eta = syn_lr.detach()
    thetas, theta_end, _, kept = student_trajectory(student, synthetic, eta, problem)
    loss, lam = loss_and_adjoint(theta_end, problem)
    pixel_grad, label_grad = torch.zeros_like(synthetic.pixels), _label_grad_buffer(synthetic)
    lr_grad = torch.zeros_like(eta)
    for i in reversed(range(len(problem.step_seeds))):
        step, (g, h_theta, h_view, h_targets) = step_products(i, kept, student, synthetic, problem, thetas, lam, True)
        lr_grad -= (lam * g).sum() * step.weight
        pixel_grad -= (eta * step.weight) * step.pixels_of(h_view)
        if label_grad is not None:
            label_grad -= (eta * step.weight) * step.labels_of(h_targets)
        lam = lam - eta * distributed.all_reduce_sum(h_theta * step.weight)  # λ_i from λ_{i+1}
    return MatchResult(loss, distributed.all_reduce_sum(pixel_grad), distributed.all_reduce_sum(lr_grad),
                       _summed(label_grad))


def first_order_gradient(student: Student, synthetic: SyntheticSet, syn_lr: torch.Tensor,
                         problem: MatchProblem) -> MatchResult:
    """Approximate: `remat` without the H_θθ term (λ_i = λ_N), so each step costs a cheaper product."""
    eta = syn_lr.detach()
    thetas, theta_end, grad_sum, kept = student_trajectory(student, synthetic, eta, problem)
    loss, lam = loss_and_adjoint(theta_end, problem)
    pixel_grad, label_grad = torch.zeros_like(synthetic.pixels), _label_grad_buffer(synthetic)
    for i in range(len(problem.step_seeds)):
        step, (_, _, h_view, h_targets) = step_products(i, kept, student, synthetic, problem, thetas, lam, False)
        pixel_grad -= (eta * step.weight) * step.pixels_of(h_view)
        if label_grad is not None:
            label_grad -= (eta * step.weight) * step.labels_of(h_targets)
    return MatchResult(loss, distributed.all_reduce_sum(pixel_grad), -(lam * grad_sum).sum(), _summed(label_grad))


GradientMode = Callable[[Student, SyntheticSet, torch.Tensor, MatchProblem], MatchResult]
GRADIENT_MODES: dict[str, GradientMode] = {"unroll": unroll_gradient, "remat": remat_gradient,
                                           "first-order": first_order_gradient}
assert tuple(GRADIENT_MODES) == names.GRAD_MODES and tuple(MATCH_LOSSES) == names.MATCH_LOSSES  # config checks those


def match(mode: str, student: Student, synthetic: SyntheticSet, syn_lr: torch.Tensor,
          problem: MatchProblem) -> MatchResult:
    """Matching loss and its gradients to the pixels and η, computed by gradient `mode`."""
    if mode not in GRADIENT_MODES:
        raise ConfigError(f"unknown --grad-mode '{mode}'; choose one of {', '.join(GRADIENT_MODES)}")
    if mode == "unroll" and distributed.world_size() > 1:
        raise ConfigError("--grad-mode unroll keeps one autograd graph and does not run data-parallel; "
                          "use --grad-mode remat (exact) under torchrun")
    with torch.enable_grad():
        return GRADIENT_MODES[mode](student, synthetic, syn_lr, problem)
