"""The ConvNet family of the distillation literature, runnable from a flat parameter vector."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from texdistill.errors import ConfigError
from texdistill.names import HEADS

NORMS = ("instancenorm", "none")


def depth_for_resolution(res: int) -> int:
    """Depth used by MTT/DSA for a given side length: 28/32 → 3, 64 → 4, 128 → 5, 256 → 6."""
    return max(1, round(math.log2(res)) - 2)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a ConvNet; stored with every trajectory and checkpoint."""

    channels: int
    num_classes: int
    height: int
    width_px: int
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    head: str = "flat"  # 'flat': the literature's linear layer on the flattened features; 'gap': global average pool first

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm '{self.norm}'; choose one of {NORMS}")
        if self.head not in HEADS:
            raise ConfigError(f"unknown ConvNet head '{self.head}'; choose one of {HEADS}")
        if self.depth < 1 or self.width < 1:
            raise ConfigError(f"ConvNet needs depth ≥ 1 and width ≥ 1, got depth {self.depth}, width {self.width}")
        if min(self.height, self.width_px) >> self.depth < 1:
            raise ConfigError(f"depth {self.depth} pools a {self.height}×{self.width_px} image to nothing; "
                              f"use --depth {max(1, min(self.height, self.width_px).bit_length() - 1)} or less")

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> "ConvNet":
        return ConvNet(self)


class AvgPool2(nn.Module):
    """2 × 2 average pooling with stride 2 of a (B, C, H, W) batch with H, W ≥ 2, as nn.AvgPool2d(2) (an odd side
    loses its last row or column), computed as two pair sums over reshaped tensors (views where the layout
    allows): the same values, rounded differently, and on a CPU a cheaper backward and
    double backward — a kept student step took 0.90–0.99× the time it takes with nn.AvgPool2d in seven interleaved
    runs of `python benchmarks/step_anatomy.py` (width 128, 32 px; README "Against the original MTT code")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) → (B, C, H // 2, W // 2)
        b, c, h, w = x.shape
        pairs = x[:, :, : h - h % 2, : w - w % 2].reshape(b, c, h // 2, 2, w - w % 2)
        rows = (pairs[:, :, :, 0] + pairs[:, :, :, 1]).reshape(b, c, h // 2, w // 2, 2)
        return (rows[..., 0] + rows[..., 1]) * 0.25


class ConvNet(nn.Module):
    """depth × [conv3×3 → instance norm → ReLU → avgpool 2], then a linear classifier on the flattened features
    (head 'flat', the literature's) or on their spatial mean (head 'gap': translation-invariant, MTT's ConvNetGAP)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        in_ch, h, w = spec.channels, spec.height, spec.width_px
        for _ in range(spec.depth):
            layers.append(nn.Conv2d(in_ch, spec.width, kernel_size=3, padding=1))
            if spec.norm == "instancenorm":
                # instance norm with affine parameters, as GroupNorm with one group per channel
                layers.append(nn.GroupNorm(spec.width, spec.width, affine=True))
            layers += [nn.ReLU(), AvgPool2()]
            in_ch, h, w = spec.width, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.gap = spec.head == "gap"
        self.classifier = nn.Linear(spec.width * (1 if self.gap else h * w), spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) → (B, num_classes)
        features = self.features(x)
        return self.classifier(features.mean(dim=(2, 3)) if self.gap else features.flatten(1))


class FlatParams:
    """Views a model's parameters as one flat vector θ and runs the model functionally from any θ."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.names = [name for name, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.numels = [p.numel() for _, p in model.named_parameters()]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def get(self) -> torch.Tensor:
        """The model's current parameters as one detached flat vector (P,)."""
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])

    def set(self, flat: torch.Tensor) -> None:
        """Copy a flat vector (P,) into the model's parameters."""
        with torch.no_grad():
            for p, chunk in zip(self.model.parameters(), flat.split(self.numels)):
                p.copy_(chunk.view_as(p))

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: chunk.view(shape)
                for name, shape, chunk in zip(self.names, self.shapes, flat.split(self.numels))}

    def forward(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits of the model with parameters `flat` (P,) on images x (B, C, H, W)."""
        return functional_call(self.model, self.unflatten(flat), (x,))


@dataclass(frozen=True)
class ConvNetCost:
    params: int
    flops: int  # forward, per image
    activations: int  # floats kept for backward, per image


def convnet_cost(spec: ModelSpec) -> ConvNetCost:
    """Parameters, forward FLOPs and saved activations of one image through the ConvNet of `spec`."""
    params = sum(p.numel() for p in spec.build().parameters())
    flops = activations = 0
    channels, h, w = spec.channels, spec.height, spec.width_px
    for _ in range(spec.depth):
        flops += 2 * 9 * channels * spec.width * h * w + 10 * spec.width * h * w  # conv, then norm/ReLU/pool
        activations += channels * h * w + 2 * spec.width * h * w
        channels, h, w = spec.width, h // 2, w // 2
    flops += 2 * channels * (1 if spec.head == "gap" else h * w) * spec.num_classes  # gap: pool, then the linear
    return ConvNetCost(params, flops, activations)


def resolve_depth(depth: int | None, height: int, width_px: int) -> int:
    """The configured depth, or the literature's depth for this resolution."""
    return depth if depth else depth_for_resolution(min(height, width_px))


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with hard (B,) int or soft (B, K) probability targets."""
    return F.cross_entropy(logits, targets)
