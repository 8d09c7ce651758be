"""Estimates before a run ("will this fit, how long"): model size, trajectory storage, peak memory per
gradient mode, compute. Formulas, not measurements of the run itself; the constants below were measured.

Memory, in float32 values, with A = activations autograd keeps per image for one backward pass of the
ConvNet (per block: the conv input plus the norm input and ReLU output, C_in·h·w + 2·W·h·w), B = images per
student step, P = parameters, N = syn_steps:
- training (experts, evaluation): 2·B·A + 4·P  (activations and their gradients; weights, grads, momentum)
- unroll:      N·(2·B·A + 2·P) + 2·B·A + base   every step keeps its forward and create_graph backward graph
- remat:       N·P + 3·B·A + base             θ_i of every step, one replayed step's double-backward graph
- first-order: N·P + 3·B·A + base             the same two passes, a cheaper product per replayed step
  base = 6·P (model, θ*_t, θ*_t+M, adjoint …) + 3 × the synthetic pixels (values, gradient, momentum)
Measured on CPU (ConvNet-3 w128, 100 × 3×32×32, no DSA): an unrolled step holds 301 MB = 1.94·B·A; a
training step 2.87 MB per image = 1.85·A. DSA's per-sample copies are small and left out.

Compute: F = forward FLOPs per image (a multiply-add is 2); a training step costs ≈ 3F per image; a student
step costs STEP_COST[mode] training steps (unroll measured on CPU: 4.3–5.1×; remat and first-order scaled
from `texdistill bench` on the demo preset, 2 CPU cores, syn_steps 10–80: eagerly 1.18–1.33× / 1.06–1.24×
unroll's time, with --compile 0.82–0.95× / 0.62–0.72×).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from texdistill.config import DistillConfig, EvalConfig, ExpertsConfig, build_config
from texdistill.data import READERS, DatasetShape, find_dataset
from texdistill.method.initial import SetLayout, set_layout
from texdistill.method.matching import kept_steps_on, step_graph_bytes
from texdistill.method.models import ConvNetCost, ModelSpec, convnet_cost, resolve_depth
from texdistill.names import GRAD_MODES
from texdistill.registry import STAGES

FLOAT = 4  # bytes
STEP_COST = {"unroll": 4.5, "remat": 5.7, "first-order": 5.2}  # student step / plain training step
STEP_COST_KEPT = {"remat": 4.5, "first-order": 4.2}  # a step whose graph is kept (--kept-steps): unroll's cost
STEP_COST_COMPILED = {"unroll": 4.5, "remat": 4.0, "first-order": 3.0}  # with --compile (unroll: not compiled)
GPU_FLOPS = 20e12  # assumed sustained fp32/TF32 throughput of one modern GPU on these ConvNets (rough)
# 2 quiet CPU cores: DESIGN.md's ConvNet-3 w128 steps on 10 × 28 px (21 ms grad, 21 + 76 ms unrolled) run at
# ≈ 100 GFLOP/s by this FLOP count; DSA and small layers cost extra, hence 70 (the demo preset: ≈ 8 min)
CPU_FLOPS = 70e9


def layout(distill: DistillConfig, classes: int, channels: int, res: int) -> SetLayout:
    """The synthetic set `distill` would learn (texture vs images is decided in method/synthetic.py)."""
    return set_layout(distill.texture, classes, channels, res, distill.ipc, distill.canvas_size,
                      distill.canvas_samples, distill.batch_syn)


@dataclass(frozen=True)
class Plan:
    """The estimated size and cost of experts → distill → evaluate."""

    spec: ModelSpec
    cost: ConvNetCost
    trajectory_bytes: int  # all experts on disk
    train_bytes: int  # peak of expert training
    distill_bytes: dict[str, int]  # gradient mode → peak (remat, first-order: with the kept step graphs)
    kept_steps: int  # steps whose graph remat/first-order keep (--kept-steps, resolved on this machine)
    step_graph_bytes: int  # one kept step's graph
    eval_bytes: int
    flops: dict[str, float]  # stage → total FLOPs

    @property
    def total_flops(self) -> float:
        return sum(self.flops.values())


def plan(shape: DatasetShape, experts: ExpertsConfig, distill: DistillConfig, evaluate: EvalConfig) -> Plan:
    """Estimates for the three stages on a dataset of `shape`."""
    res = shape.res
    spec = ModelSpec(shape.channels, shape.classes, res, res, width=experts.width,
                     depth=resolve_depth(experts.depth, res, res))
    cost = convnet_cost(spec)
    p, a, k = cost.params, cost.activations, shape.classes
    synthetic = layout(distill, k, shape.channels, res)
    batch, pixels, eval_epoch, baselines = (synthetic.step_batch, synthetic.values, synthetic.eval_epoch,
                                            synthetic.baselines)
    n = distill.syn_steps
    base = 6 * p + 3 * pixels
    step_graph = step_graph_bytes(spec, batch, FLOAT)  # what unroll keeps per step, and a kept step
    kept = kept_steps_on(distill.torch_device(), distill.kept_steps, n, step_graph, distill.compile_kernels())
    distill_floats = {"unroll": n * step_graph // FLOAT + 2 * batch * a + base,
                      "remat": n * p + 3 * batch * a + base + kept * step_graph // FLOAT,
                      "first-order": n * p + 3 * batch * a + base + kept * step_graph // FLOAT}
    train_step = 3 * cost.flops  # per image
    step_cost = dict(STEP_COST_COMPILED if distill.compile_kernels() else STEP_COST)
    for mode, kept_cost in STEP_COST_KEPT.items():
        step_cost[mode] = (kept * kept_cost + (n - kept) * step_cost[mode]) / n
    flops = {
        "experts": experts.num_experts * (experts.epochs * shape.train * train_step + shape.test * cost.flops),
        "distill": distill.iterations * n * batch * train_step * step_cost[distill.grad_mode],
        "evaluate": (1 + baselines * evaluate.baselines) * evaluate.num_models * (
            evaluate.eval_epochs * eval_epoch * train_step + shape.test * cost.flops),
    }
    if distill.recognition_lr > 0:  # recognisers (≈ the ConvNet's cost) trained once, then Adam steps on crops
        flops["recognition"] = distill.recognition_models * train_step * (
            distill.recognizer_epochs * shape.train
            + distill.iterations * distill.recognition_steps * distill.recognition_crops * k)
    return Plan(spec, cost,
                trajectory_bytes=experts.num_experts * (experts.epochs + 1) * p * FLOAT,
                train_bytes=(2 * experts.batch_train * a + 4 * p) * FLOAT,
                distill_bytes={mode: floats * FLOAT for mode, floats in distill_floats.items()},
                kept_steps=kept, step_graph_bytes=step_graph,
                eval_bytes=(2 * evaluate.eval_batch * a + 4 * p) * FLOAT,
                flops=flops)


def size(n_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def duration(seconds: float) -> str:
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale:
            return f"≈ {seconds / scale:.1f} {unit}"
    return "< 1 min"


def one_line(p: Plan) -> str:
    """The summary `texdistill presets` prints."""
    modes = " / ".join(f"{size(p.distill_bytes[m])} {m}" for m in GRAD_MODES)
    return (f"peak {modes} · experts {size(p.trajectory_bytes)} on disk · "
            f"{duration(p.total_flops / GPU_FLOPS)} GPU, {duration(p.total_flops / CPU_FLOPS)} CPU")


def report(p: Plan, experts: ExpertsConfig, distill: DistillConfig, evaluate: EvalConfig) -> str:
    """The multi-line estimate `--dry-run` prints."""
    s = p.spec
    synthetic = layout(distill, s.num_classes, s.channels, s.height)
    batch = f"{synthetic.step_batch} {synthetic.step_unit}"
    modes = "\n".join(f"    {m:12s} ≈ {size(p.distill_bytes[m])}" + ("   ← --grad-mode" if m == distill.grad_mode else "")
                      for m in GRAD_MODES)
    times = ", ".join(f"{stage} {duration(f / GPU_FLOPS)}" for stage, f in p.flops.items())
    return (f"model: ConvNet depth {s.depth}, width {s.width}, {s.channels}×{s.height}×{s.width_px} → "
            f"{s.num_classes} classes: {p.cost.params / 1e6:.2f} M parameters ({size(p.cost.params * FLOAT)}), "
            f"{p.cost.flops / 1e9:.2f} GFLOP per image\n"
            f"experts: {experts.num_experts} × {experts.epochs} epochs → trajectories {size(p.trajectory_bytes)} "
            f"on disk ({size(p.trajectory_bytes / experts.num_experts)} each)\n"
            f"peak memory (estimates):\n"
            f"  expert training, batch {experts.batch_train}: ≈ {size(p.train_bytes)}\n"
            f"  distillation, {distill.syn_steps} student steps of {batch}:\n{modes}\n"
            f"    (remat, first-order: {p.kept_steps} of them keep their graph here, {size(p.step_graph_bytes)} each; "
            f"--kept-steps {distill.kept_steps})\n"
            f"  evaluation, batch {evaluate.eval_batch}: ≈ {size(p.eval_bytes)}\n"
            f"compute: {p.total_flops / 1e15:.3g} PFLOP, {duration(p.total_flops / GPU_FLOPS)} on one GPU at "
            f"{GPU_FLOPS / 1e12:.0f} TFLOP/s ({times}); {duration(p.total_flops / CPU_FLOPS)} on 2 CPU cores")


def stage_configs(values: dict[str, Any]) -> tuple[ExpertsConfig, DistillConfig, EvalConfig]:
    """The three stage configs one set of option values gives (each stage takes the fields it has)."""
    return tuple(build_config(STAGES[stage], values) for stage in ("experts", "distill", "evaluate"))


def preset_summary(values: dict[str, Any]) -> str:
    """The one-line estimate of a preset, at the usual size of its dataset (no data needed)."""
    experts, distill, evaluate = stage_configs(values)
    reader = READERS.get(experts.data)
    if reader is None or reader.nominal is None:
        return "size depends on your data; `--dry-run` estimates it"
    shape = replace(reader.nominal, res=experts.res or reader.nominal.res)
    return one_line(plan(shape, experts, distill, evaluate))


def dry_run(values: dict[str, Any]) -> str:
    """What `--dry-run` prints: the dataset found on disk (nothing decoded or written) and the estimates."""
    experts, distill, evaluate = stage_configs(values)
    found = find_dataset(**experts.dataset_options())
    return found.describe() + "\n" + report(plan(found.shape, experts, distill, evaluate), experts, distill, evaluate)
