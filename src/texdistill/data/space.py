"""The pixel space networks and synthetic sets live in: per-channel normalisation (ZCA plugs in here)."""

from __future__ import annotations

import torch

from texdistill.data.dataset import ImageDataset


class PixelSpace:
    """Maps uint8 images to normalised float tensors and back; one object per run, saved with it."""

    def __init__(self, mean: list[float], std: list[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    @classmethod
    def fit(cls, dataset: ImageDataset) -> "PixelSpace":
        """Per-channel mean/std of the training images."""
        mean, std = dataset.channel_stats()
        return cls(mean, std)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) → float32 normalised (N, C, H, W)."""
        return (images.float() / 255.0 - self.mean) / self.std

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float (N, C, H, W) of any H, W → displayable float in [0, 1]."""
        x = x.detach().float().cpu()
        return (x * self.std + self.mean).clamp(0.0, 1.0)

    def to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float (N, C, H, W) → uint8 (N, C, H, W) for PNG output."""
        return (self.decode(x) * 255.0).round().to(torch.uint8)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.flatten().clone(), "std": self.std.flatten().clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "PixelSpace":
        return cls(state["mean"].tolist(), state["std"].tolist())
