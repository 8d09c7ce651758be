"""Where one exact student step's time goes, at the original MTT code's texture scale (CPU).

    python benchmarks/step_anatomy.py [--width 128] [--res 32] [--batch 10] [--repeats 8]

A kept step of `remat` (the default) is what `unroll` does per step: the forward pass and the create_graph
backward that gives g = ∇_θ ℓ, then the vector–Hessian products ∂⟨g, λ⟩/∂(θ, view) taken from that graph
(kernels.gradient_with_graph + kernels.graph_products). This times that step, eagerly, for the ConvNet as the
distillation uses it and for variants that bound what a faster kernel could save:

- `as used`: ConvNet-3 with instance norm (GroupNorm, one group per channel), average pooling (models.AvgPool2);
- `no instance norm`: the same without its norm layers: the time instance norm's forward, backward and double
  backward take is the difference (a free instance norm could save at most that);
- `instance norm as var_mean ops`: the norm written with other eager ops (var_mean, one multiply-add), whose
  double backward autograd derives from those ops instead of GroupNorm's own formula; `as F.instance_norm`: the
  same norm through PyTorch's instance-norm function (batch norm's kernels on a (1, B·C, H, W) view);
- `average pool as nn.AvgPool2d` / `as strided slices`: the 2 × 2 average pooling as PyTorch's own layer (what the
  ConvNet used before models.AvgPool2, which adds pairs of reshaped views) or as a sum of four strided slices;
- `batch in chunks of k`: the same work in pieces of k images (each piece's loss, gradient and products; a
  step would add them up, weighted): whether smaller working sets (cache-resident activations) beat bigger
  convolutions.

Milliseconds per step: the fastest of `repeats` rounds of 3 steps after 2 warm-up steps, the variants taking
turns round by round, one process.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from texdistill.method.kernels import gradient_with_graph, graph_products
from texdistill.method.models import AvgPool2, FlatParams, ModelSpec, classification_loss
from texdistill.tools.hostmem import keep_freed_memory


class VarMeanInstanceNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, (2, 3), keepdim=True, correction=0)
        scale = torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1)
        return x * scale + (self.bias.view(1, -1, 1, 1) - mean * scale)


class FunctionalInstanceNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class SlicePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) * 0.25


def variant(model: nn.Module, name: str) -> nn.Module:
    """The ConvNet with its norm ('var_mean', 'instance_norm') or pooling ('avg_pool2d', 'slices') layers replaced
    by the same function written with other ops; '' keeps it as it is."""
    for i, layer in enumerate(model.features):
        if name in ("var_mean", "instance_norm") and isinstance(layer, nn.GroupNorm):
            kind = VarMeanInstanceNorm if name == "var_mean" else FunctionalInstanceNorm
            model.features[i] = kind(layer.num_groups, layer.num_channels, layer.eps)
            model.features[i].load_state_dict(layer.state_dict())
        elif name == "avg_pool2d" and isinstance(layer, AvgPool2):
            model.features[i] = nn.AvgPool2d(2)
        elif name == "slices" and isinstance(layer, AvgPool2):
            model.features[i] = SlicePool()
    return model


def step_fn(spec: ModelSpec, batch: int, chunk: int, variant_name: str = ""):
    """One kept step (gradient with graph, then its products with a random λ) on random images, in chunks."""
    torch.manual_seed(0)
    flat = FlatParams(variant(spec.build(), variant_name))
    theta = flat.get()
    x = torch.randn(batch, spec.channels, spec.height, spec.width_px)
    y = torch.randint(0, spec.num_classes, (batch,))
    lam = torch.randn_like(theta) * 1e-3

    def loss(t, view, targets):
        return classification_loss(flat.forward(t, view), targets)

    def step():
        with torch.enable_grad():
            return [graph_products(*gradient_with_graph(loss, theta, x[s:s + chunk], y[s:s + chunk]), lam, True)
                    for s in range(0, batch, chunk)]
    return step


def ms_per_step(steps: list, repeats: int) -> list[float]:
    """Milliseconds per call of each step function: the fastest of `repeats` rounds of 3 calls, the functions
    taking turns round by round (so load that comes and goes hits them alike), after 2 warm-up calls each."""
    for step in steps:
        for _ in range(2):
            step()
    best = [float("inf")] * len(steps)
    for _ in range(repeats):
        for i, step in enumerate(steps):
            started = time.perf_counter()
            for _ in range(3):
                step()
            best[i] = min(best[i], (time.perf_counter() - started) / 3)
    return [1000 * b for b in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=128, help="ConvNet width (the reference's: 128)")
    parser.add_argument("--res", type=int, default=32, help="crop side in pixels (the reference pads 28 to 32)")
    parser.add_argument("--batch", type=int, default=10, help="crops per student step (one per class)")
    parser.add_argument("--repeats", type=int, default=8, help="timed rounds per variant; the fastest is reported")
    args = parser.parse_args()
    keep_freed_memory()  # as the CLI does
    spec = ModelSpec(1, 10, args.res, args.res, width=args.width, depth=3)
    rows = [("as used", spec, args.batch, ""),
            ("no instance norm", ModelSpec(1, 10, args.res, args.res, width=args.width, depth=3, norm="none"),
             args.batch, ""),
            ("instance norm as var_mean ops", spec, args.batch, "var_mean"),
            ("instance norm as F.instance_norm", spec, args.batch, "instance_norm"),
            ("average pool as nn.AvgPool2d", spec, args.batch, "avg_pool2d"),
            ("average pool as strided slices", spec, args.batch, "slices")]
    rows += [(f"batch in chunks of {k}", spec, k, "") for k in (5, 2, 1) if k < args.batch]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ConvNet-3 width {args.width}, "
          f"{args.batch} crops of {args.res} px per step; one kept step (forward, create_graph backward, products)")
    times = ms_per_step([step_fn(row_spec, args.batch, chunk, name) for _, row_spec, chunk, name in rows],
                        args.repeats)
    for (name, *_), ms in zip(rows, times):
        print(f"{name:<32}{ms:8.1f} ms/step  {ms / times[0]:5.2f}×")


if __name__ == "__main__":
    main()
