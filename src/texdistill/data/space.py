"""The pixel space networks and synthetic sets live in: per-channel normalisation, or ZCA whitening.

One PixelSpace per run, fitted on the training images, saved with the experts (experts/space.safetensors) and
with the result (synthetic.safetensors). encode() maps real uint8 images into it; decode() maps anything in it
(images, canvases) back to displayable pixels. `periodic` tells the ZCA filter that the input is a torus (a
texture canvas) rather than a photo; plain normalisation ignores it.
"""

from __future__ import annotations

import torch

from texdistill.data.dataset import ImageDataset
from texdistill.data.zca import DEFAULT_EPS, ZCAFilter
from texdistill.errors import ConfigError


class PixelSpace:
    """Maps uint8 images to normalised (optionally ZCA-whitened) float tensors and back."""

    def __init__(self, mean: list[float], std: list[float], zca: ZCAFilter | None = None):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.zca = zca
        self._stats_on: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (device, dtype) → mean, std

    def stats_on(self, device: torch.device, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std on `device` in `dtype`, copied there once (not once per batch or step)."""
        key = (device, dtype)
        if key not in self._stats_on:
            self._stats_on[key] = self.mean.to(device, dtype), self.std.to(device, dtype)
        return self._stats_on[key]

    @classmethod
    def fit(cls, dataset: ImageDataset, zca: bool = False, zca_eps: float = DEFAULT_EPS) -> "PixelSpace":
        """Per-channel mean/std of the training images; with `zca`, mean removal + ZCA instead (as MTT)."""
        mean, std = dataset.channel_stats()
        if not zca:
            return cls(mean, std)
        whitening = ZCAFilter.fit(dataset.train_images, torch.tensor(mean, dtype=torch.float64), zca_eps)
        return cls(mean, [1.0] * len(mean), whitening)

    @property
    def whitened(self) -> bool:
        return self.zca is not None

    def require_zca(self, zca: bool, source: str) -> None:
        """Refuse a --zca setting that contradicts this space, which was stored in `source`."""
        if zca != self.whitened:
            made = "with" if self.whitened else "without"
            raise ConfigError(f"{source} was made {made} ZCA whitening but --zca is {'on' if zca else 'off'}; "
                              f"{'add --zca' if self.whitened else 'drop --zca'} or retrain the experts with it")

    def encode(self, images: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """uint8 (N, C, H, W) → float32 (N, C, H, W) in model space, on the images' device."""
        mean, std = self.stats_on(images.device)
        x = (images.float() / 255.0 - mean) / std
        return self.zca.whiten(x, periodic) if self.zca else x

    def decode(self, x: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """Model-space float (N, C, H, W) of any H, W → displayable float in [0, 1]."""
        x = x.detach().float().cpu()
        if self.zca:
            x = self.zca.unwhiten(x, periodic)
        return (x * self.std + self.mean).clamp(0.0, 1.0)

    def display_values(self, x: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """Model-space pixels (N, C, H, W) → display values (1 = white), not clamped; differentiable, on x's
        device and dtype (decode() is the clamped, detached version for PNGs)."""
        mean, std = self.stats_on(x.device, x.dtype)
        plain = self.zca.unwhiten(x, periodic).to(x.dtype) if self.zca else x
        return plain * std + mean

    def project(self, x: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """Model-space pixels (N, C, H, W) moved to the nearest displayable ones (display values clamped to
        [0, 1], with ZCA: in unwhitened space) — what a PNG of them shows, on x's device and dtype."""
        mean, std = self.stats_on(x.device, x.dtype)
        back = (self.display_values(x, periodic).clamp(0.0, 1.0) - mean) / std
        return self.zca.whiten(back, periodic).to(x.dtype) if self.zca else back

    def to_uint8(self, x: torch.Tensor, periodic: bool = False) -> torch.Tensor:
        """Model-space float (N, C, H, W) → uint8 (N, C, H, W) for PNG output."""
        return (self.decode(x, periodic) * 255.0).round().to(torch.uint8)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"mean": self.mean.flatten().clone(), "std": self.std.flatten().clone()}
        if self.zca:
            state.update({f"zca.{k}": v for k, v in self.zca.state_dict().items()})
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "PixelSpace":
        zca_state = {k[4:]: v for k, v in state.items() if k.startswith("zca.")}
        zca = ZCAFilter.from_state_dict(zca_state) if zca_state else None
        return cls(state["mean"].tolist(), state["std"].tolist(), zca)
