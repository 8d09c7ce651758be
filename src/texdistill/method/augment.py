"""Differentiable Siamese Augmentation (DSA): batched, per-sample random, replayable from a seed.

MTT's default is ``mode="one"``: each call picks ONE transform of the strategy string at random
("color" counts as one: brightness, saturation and contrast together) and applies it with independent
random parameters for every sample. ``mode="all"`` applies every transform of the strategy in sequence.
All randomness comes from a ``torch.Generator`` seeded per call, so a call is replayed bit-exactly by
passing the same seed again — that is what the exact-gradient replay of a student step relies on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from texdistill.errors import ConfigError
from texdistill.method.transfer import to_device
from texdistill.names import DEFAULT_STRATEGY, dsa_transforms


@dataclass(frozen=True)
class DSAConfig:
    """Strategy and magnitudes of DSA; the defaults are the literature's (ParamDiffAug in DSA/MTT)."""

    strategy: str = DEFAULT_STRATEGY
    mode: str = "one"
    flip_prob: float = 0.5
    scale_ratio: float = 1.2
    rotate_degrees: float = 15.0
    crop_pad_ratio: float = 0.125
    cutout_ratio: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("one", "all"):
            raise ConfigError(f"DSA mode must be 'one' (MTT) or 'all', got '{self.mode}'")
        dsa_transforms(self.strategy)  # an unknown transform is one line naming the known ones

    @property
    def transforms(self) -> list[str]:
        return dsa_transforms(self.strategy)


def dsa_of(cfg) -> DSAConfig | None:
    """The DSA of a stage config (its --dsa, --dsa-strategy, --dsa-mode); None with --no-dsa."""
    return DSAConfig(strategy=cfg.dsa_strategy, mode=cfg.dsa_mode) if cfg.dsa else None


AugParams = list[tuple[str, dict[str, torch.Tensor]]]  # (transform, per-sample parameters), drawn on the CPU


def sample_params(cfg: DSAConfig, batch: int, height: int, width: int,
                  generator: torch.Generator) -> AugParams:
    """Draw the random parameters of one DSA call for `batch` samples (CPU tensors)."""
    names = cfg.transforms
    if not names:
        return []
    if cfg.mode == "one":
        names = [names[int(torch.randint(len(names), (1,), generator=generator))]]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    params: AugParams = []
    for name in names:
        if name == "color":
            p = {"brightness": (uniform(batch) - 0.5) * cfg.brightness,
                 "saturation": uniform(batch) * cfg.saturation,
                 "contrast": uniform(batch) + cfg.contrast}
        elif name == "crop":
            sy, sx = int(height * cfg.crop_pad_ratio + 0.5), int(width * cfg.crop_pad_ratio + 0.5)
            p = {"dy": torch.randint(-sy, sy + 1, (batch,), generator=generator),
                 "dx": torch.randint(-sx, sx + 1, (batch,), generator=generator)}
        elif name == "cutout":
            ch, cw = int(height * cfg.cutout_ratio + 0.5), int(width * cfg.cutout_ratio + 0.5)
            p = {"cy": torch.randint(0, height + (1 - ch % 2), (batch,), generator=generator) - ch // 2,
                 "cx": torch.randint(0, width + (1 - cw % 2), (batch,), generator=generator) - cw // 2,
                 "height": torch.full((batch,), ch), "width": torch.full((batch,), cw)}
        elif name == "flip":
            p = {"flip": uniform(batch) < cfg.flip_prob}
        elif name == "scale":
            low = 1.0 / cfg.scale_ratio
            p = {"sx": uniform(batch) * (cfg.scale_ratio - low) + low,
                 "sy": uniform(batch) * (cfg.scale_ratio - low) + low}
        else:  # rotate
            p = {"angle": (uniform(batch) - 0.5) * 2 * cfg.rotate_degrees / 180 * math.pi}
        params.append((name, p))
    return params


def apply(x: torch.Tensor, params: AugParams) -> torch.Tensor:
    """Apply drawn DSA parameters to x (B, C, H, W); differentiable in x. The parameters reach x's device in
    one non-blocking copy per dtype (transfer.py), and nothing here reads a device value back to the host."""
    moved = to_device({f"{i}.{k}": v for i, (_, p) in enumerate(params) for k, v in p.items()}, x.device)
    for i, (name, p) in enumerate(params):
        x = _APPLY[name](x, {k: moved[f"{i}.{k}"] for k in p})
    return x


def augment(x: torch.Tensor, cfg: DSAConfig | None, seed: int) -> torch.Tensor:
    """One DSA call on x (B, C, H, W) whose randomness is fully determined by `seed`."""
    if cfg is None or not cfg.transforms:
        return x
    generator = torch.Generator().manual_seed(seed)
    return apply(x, sample_params(cfg, x.shape[0], x.shape[2], x.shape[3], generator))


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, 1, 1, 1)


def _color(x: torch.Tensor, p: dict) -> torch.Tensor:
    x = x + _per_sample(p["brightness"], x)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _per_sample(p["saturation"], x) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(p["contrast"], x) + mean


def _crop(x: torch.Tensor, p: dict) -> torch.Tensor:
    # translate by (dy, dx) with zero fill, as DSA's rand_crop (pad 1, clamp indices into the pad)
    b, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device).view(1, h) + p["dy"].view(b, 1) + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, w) + p["dx"].view(b, 1) + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, p: dict) -> torch.Tensor:
    b, _, h, w = x.shape
    top, left = p["cy"].view(b, 1), p["cx"].view(b, 1)  # the hole's corner and size, as tensors: no host read
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= top) & (rows < top + p["height"].view(b, 1))  # (B, H)
    in_cols = (cols >= left) & (cols < left + p["width"].view(b, 1))  # (B, W)
    keep = ~(in_rows.view(b, h, 1) & in_cols.view(b, 1, w))
    return x * keep.unsqueeze(1).to(x.dtype)


def _flip(x: torch.Tensor, p: dict) -> torch.Tensor:
    return torch.where(p["flip"].view(-1, 1, 1, 1), x.flip(3), x)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _scale(x: torch.Tensor, p: dict) -> torch.Tensor:
    zeros = torch.zeros_like(p["sx"])
    theta = torch.stack([torch.stack([p["sx"], zeros, zeros], 1),
                         torch.stack([zeros, p["sy"], zeros], 1)], 1)  # (B, 2, 3)
    return _warp(x, theta)


def _rotate(x: torch.Tensor, p: dict) -> torch.Tensor:
    a = p["angle"]
    zeros = torch.zeros_like(a)
    theta = torch.stack([torch.stack([a.cos(), -a.sin(), zeros], 1),
                         torch.stack([a.sin(), a.cos(), zeros], 1)], 1)  # (B, 2, 3)
    return _warp(x, theta)


_APPLY = {"color": _color, "crop": _crop, "cutout": _cutout, "flip": _flip, "scale": _scale, "rotate": _rotate}
