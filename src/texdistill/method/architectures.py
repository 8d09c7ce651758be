"""Networks other than the distillation's ConvNet: evaluation architectures and judges.

The distillation literature evaluates a distilled set across architectures (MTT, Cazenavette et al. 2022, §5;
the definitions follow DC/DSA/MTT's `networks.py`, Zhao et al. 2021): ConvNet, ResNet-18, VGG-11, AlexNet.
They are written here with torch only and adapted to any image size and channel count:

- `convnet`: the distillation's ConvNet (models.ConvNet): conv3×3 → instance norm → ReLU → avg-pool 2, linear head.
- `convnet-bn`: the ConvNet with batch norm and max-pooling (the literature's ConvNetBN / ConvNetMP).
- `resnet18` / `resnet18-bn`: ResNet-18 (He et al. 2016) as the DC code adapts it to small images: a 3×3 stem
  of 64 channels without max-pool, BasicBlocks [2, 2, 2, 2] of 64/128/256/512 channels (stride 2 from the
  second stage), instance norm (`-bn`: batch norm); global average pooling before the classifier (the DC code
  pools a fixed 4×4, which only fits 32 px).
- `resnet10`: one BasicBlock per stage at half width (32…256), batch norm: a small ResNet, fast on a CPU.
- `vgg11` / `vgg11-bn`: VGG-11 (Simonyan & Zisserman 2015), [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
  each conv followed by instance (batch) norm and ReLU; a 1-channel 28-px input is padded to 32 by the first conv
  (as the DC code); global average pooling before the linear classifier.
- `alexnet`: the DC code's AlexNet: conv5×5 128 → pool → conv5×5 192 → pool → conv3×3 256, 192, 192 → pool, no
  norm; the features are average-pooled to 4×4 (the DC code's 32-px size) before the linear classifier.
- `lenet`: the DC code's LeNet-5 (LeCun et al. 1998): conv 5×5 6 → max-pool → conv 5×5 16 → max-pool → fc 120, 84 (ReLU);
  a 28-px input is padded by 2 (as the DC code; smaller ones in both convs), other sizes are average-pooled to 5×5
  before the fc layers.
- `vit-tiny`: a small vision transformer (Dosovitskiy et al. 2021) with no convolution: non-overlapping p×p
  patches on a 4×4 grid (p = round(size / 4): 7×7 at 28 px, 8×8 at 32, 32×32 at 128; the image zero-padded to a
  multiple of p; until revision 2 an 8×8 grid, 2.9× slower to train at 28 px for 0.9 points of test accuracy)
  flattened and embedded by one linear layer, a CLS token and learned position embeddings, 4 pre-norm encoder
  layers of width 64 (4 heads, MLP 128, GELU), the CLS token's final layer norm → linear classifier.

`build(name, channels, num_classes, size)` makes one; ARCHITECTURES lists the names, `family(name)` groups them.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from texdistill.errors import ConfigError
from texdistill.method.models import ModelSpec, resolve_depth
from texdistill.names import ARCHITECTURES


def _norm(kind: str, channels: int) -> nn.Module:
    """Instance norm (GroupNorm, one group per channel, affine) or batch norm."""
    return nn.GroupNorm(channels, channels, affine=True) if kind == "instance" else nn.BatchNorm2d(channels)


class ConvNetBN(nn.Module):
    """depth × [conv3×3 → batch norm → ReLU → max-pool 2], then a linear classifier."""

    def __init__(self, channels: int, num_classes: int, size: int, width: int = 128, depth: int | None = None):
        super().__init__()
        depth = resolve_depth(depth, size, size)
        layers: list[nn.Module] = []
        in_ch, side = channels, size
        for _ in range(depth):
            layers += [nn.Conv2d(in_ch, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            in_ch, side = width, side // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) → (B, num_classes)
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (1×1 projection when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _norm(norm, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """3×3 stem, four stages of BasicBlocks (stride 2 from the second), global average pool, linear head."""

    def __init__(self, channels: int, num_classes: int, blocks: tuple[int, ...] = (2, 2, 2, 2), width: int = 64,
                 norm: str = "instance"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), _norm(norm, width), nn.ReLU())
        stages, in_ch = [], width
        for i, count in enumerate(blocks):
            out_ch = width * 2 ** i
            for j in range(count):
                stages.append(BasicBlock(in_ch, out_ch, 2 if i > 0 and j == 0 else 1, norm))
                in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stages(self.stem(x)).mean(dim=(2, 3)))


VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG-11 with a norm after every conv; global average pooling before the linear classifier."""

    def __init__(self, channels: int, num_classes: int, size: int, norm: str = "instance"):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, first = channels, True
        for item in VGG11_LAYERS:
            if item == "M":
                # a side that has become odd or 1 is not pooled further (small inputs keep a 1×1 map)
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            pad = 3 if first and size == 28 else 1  # 28 px → 32, as the DC code does for 1-channel data
            layers += [nn.Conv2d(in_ch, item, 3, padding=pad), _norm(norm, item), nn.ReLU()]
            in_ch, first = item, False
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class LeNet(nn.Module):
    """The DC code's LeNet-5: conv5×5 6 → max-pool → conv5×5 16 → max-pool → fc 120 → fc 84 → classes (ReLU, no norm)."""

    def __init__(self, channels: int, num_classes: int, size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2 if size <= 28 else 0), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2 if size < 20 else 0), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(5))
        self.classifier = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                        nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AlexNet(nn.Module):
    """The DC code's AlexNet for small images (no norm); features average-pooled to 4×4."""

    def __init__(self, channels: int, num_classes: int, size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 5, padding=4 if size == 28 else 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(192, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 192, 3, padding=1), nn.ReLU(),
            nn.Conv2d(192, 192, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Linear(192 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class ViT(nn.Module):
    """Patches → linear embedding + CLS + learned positions → pre-norm transformer encoder → CLS → linear head."""

    def __init__(self, channels: int, num_classes: int, size: int, width: int = 64, layers: int = 4, heads: int = 4):
        super().__init__()
        self.patch = max(1, round(size / 4))
        tokens = (-(-size // self.patch)) ** 2
        self.embed = nn.Linear(channels * self.patch ** 2, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.randn(1, tokens + 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) → (B, num_classes)
        p = self.patch
        x = F.pad(x, (0, -x.shape[3] % p, 0, -x.shape[2] % p))
        patches = F.unfold(x, p, stride=p).transpose(1, 2)  # (B, tokens, C·p·p): non-overlapping, no convolution
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), self.embed(patches)], 1) + self.position
        return self.classifier(self.norm(self.encoder(tokens)[:, 0]))


# an architecture whose shape changed since networks of it were first cached: its revision goes into the user
# cache's key (method/judges.py judge_key), so a network of the old shape is trained again, not misread
REVISION = {"vit-tiny": 2}


def family(name: str) -> str:
    """An architecture's family: convnet (convnet, convnet-bn), resnet, vgg, alexnet, lenet or vit."""
    return next((f for f in ("convnet", "resnet", "vgg", "alexnet", "lenet", "vit") if name.startswith(f)), name)


def build(name: str, channels: int, num_classes: int, size: int, width: int = 128, depth: int | None = None) -> nn.Module:
    """A fresh network `name` for (channels, size, size) images; `width`/`depth` shape the ConvNets only."""
    if name == "convnet":
        return ModelSpec(channels, num_classes, size, size, width, resolve_depth(depth, size, size)).build()
    if name == "convnet-bn":
        return ConvNetBN(channels, num_classes, size, width, depth)
    if name in ("resnet18", "resnet18-bn"):
        return ResNet(channels, num_classes, norm="batch" if name.endswith("-bn") else "instance")
    if name == "resnet10":
        return ResNet(channels, num_classes, blocks=(1, 1, 1, 1), width=32, norm="batch")
    if name in ("vgg11", "vgg11-bn"):
        return VGG(channels, num_classes, size, norm="batch" if name.endswith("-bn") else "instance")
    if name == "alexnet":
        return AlexNet(channels, num_classes, size)
    if name == "lenet":
        return LeNet(channels, num_classes, size)
    if name == "vit-tiny":
        return ViT(channels, num_classes, size)
    raise ConfigError(f"unknown architecture '{name}'; choose from {', '.join(ARCHITECTURES)}")
