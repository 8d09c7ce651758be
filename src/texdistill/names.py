"""The names a config may choose from, registered once: config.py checks options against them, and each registry
of the method (and the garments of the mock-ups) asserts that it holds exactly these. A leaf: it imports nothing
of texdistill but the errors, so config.py needs no method code to check a name."""

from __future__ import annotations

from texdistill.errors import ConfigError

# method/architectures.py builds each
ARCHITECTURES = ("convnet", "convnet-bn", "resnet18", "resnet18-bn", "resnet10", "vgg11", "vgg11-bn", "alexnet", "lenet",
                 "vit-tiny")
PRECISIONS = ("float32", "bfloat16")  # of a training step's arithmetic (bfloat16: autocast; parameters stay float32)
GRAD_MODES = ("unroll", "remat", "first-order")  # method/matching.py GRADIENT_MODES
MATCH_LOSSES = ("normalized", "per-layer")  # method/matching.py MATCH_LOSSES
DSA_TRANSFORMS = ("color", "crop", "cutout", "flip", "scale", "rotate")  # method/augment.py
DEFAULT_STRATEGY = "_".join(DSA_TRANSFORMS)
GARMENTS = ("tshirt", "dress", "scarf", "tote", "cushion")  # products/garments.py draws each


def dsa_transforms(strategy: str) -> list[str]:
    """The transforms of a DSA strategy string ('color_crop_…', or '' / 'none' for none), checked."""
    transforms = [] if strategy.lower() in ("", "none") else strategy.split("_")
    unknown = [t for t in transforms if t not in DSA_TRANSFORMS]
    if unknown:
        raise ConfigError(f"unknown DSA transform(s) {unknown} in '{strategy}'; "
                          f"use names from {'_'.join(DSA_TRANSFORMS)} joined by '_', or 'none'")
    return transforms
