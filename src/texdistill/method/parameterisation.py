"""How a synthetic set's pixels are made from what is learned (--parameterisation).

- `pixels`: the pixels themselves are learned (MTT).
- `fourier`: the learned tensor holds the coefficients of an inverse real FFT over each image or canvas, scaled by
  1/frequency^α (Mordvintsev et al., "Differentiable image parameterizations", Distill 2018), and for RGB mixed by
  a fixed decorrelated colour basis fitted on the data. An inverse FFT over the canvas grid is exactly periodic,
  so a canvas has no seam anywhere by construction; the scaling lets the low frequencies, which carry a texture's
  layout, move first, and keeps the crop-draw noise of each iteration's gradient out of the finest pixels.

The map is linear, x = P(c). The matching gradient is computed to the pixels as before (matching.py does not know
the parameterisation) and pulled back exactly, ∂L/∂c = Pᵀ ∂L/∂x. The scale is normalised so that with α = 0 and
an identity colour basis P Pᵀ = I: one SGD step on c moves the pixels exactly as one SGD step on the pixels would
(the interior columns of the half spectrum count twice in the inverse real FFT, so they are scaled by 1/√2), and
with α > 0 a frequency f moves (f₀ / f)^(2α) times as far, f₀ = 1 / the longer side (the lowest and the DC
component move as pixels do).
"""

from __future__ import annotations

import math

import torch

PARAMETERISATIONS = ("pixels", "fourier")


def spectrum_scale(height: int, width: int, alpha: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W//2+1) real scale of each half-spectrum coefficient: (f₀ / max(f, f₀))^α, interior columns ÷ √2."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64).abs().view(-1, 1)  # cycles per pixel
    fx = torch.fft.rfftfreq(width, dtype=torch.float64).view(1, -1)
    f0 = 1.0 / max(height, width)
    scale = (f0 / torch.sqrt(fy ** 2 + fx ** 2).clamp_min(f0)) ** alpha
    interior = torch.ones(width // 2 + 1, dtype=torch.float64)
    interior[1:(width + 1) // 2] = 1 / math.sqrt(2)  # columns whose mirror image the half spectrum leaves out
    return (scale * interior).to(dtype)


def colour_basis(images: torch.Tensor) -> torch.Tensor:
    """(C, C) symmetric square root of the channel covariance of model-space images (N, C, H, W), normalised to
    a mean eigenvalue of 1: coefficients in this basis are decorrelated colours (lucid's color_correlation)."""
    x = images.detach().double().transpose(0, 1).reshape(images.shape[1], -1)
    values, vectors = torch.linalg.eigh(torch.cov(x))
    roots = values.clamp_min(1e-12 * values.max()).sqrt()
    return (vectors @ torch.diag(roots / roots.mean()) @ vectors.T).float()


class Fourier:
    """x = M · irfft2(c · scale) per image/canvas: c (N, C, H, W//2+1, 2) real and imaginary parts."""

    name = "fourier"

    def __init__(self, shape: tuple[int, int], alpha: float, colour: torch.Tensor | None = None):
        self.shape = tuple(shape)
        self.alpha = alpha
        self.colour = colour  # (C, C) or None (identity)
        self._scale: dict[tuple, torch.Tensor] = {}

    def scale(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._scale:
            self._scale[key] = spectrum_scale(*self.shape, self.alpha, like.dtype).to(like.device)
        return self._scale[key]

    def _mix(self, x: torch.Tensor, matrix: torch.Tensor | None) -> torch.Tensor:
        if matrix is None:
            return x
        return torch.einsum("dc,nchw->ndhw", matrix.to(x.device, x.dtype), x)

    def render(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Pixels (N, C, H, W) of coefficients (N, C, H, W//2+1, 2); differentiable."""
        spectrum = torch.view_as_complex(coefficients.contiguous()) * self.scale(coefficients)
        return self._mix(torch.fft.irfft2(spectrum, s=self.shape, norm="ortho"), self.colour)

    def coefficients(self, pixels: torch.Tensor) -> torch.Tensor:
        """The coefficients that render to `pixels` (N, C, H, W) exactly: render(coefficients(x)) = x."""
        inverse = None if self.colour is None else torch.linalg.inv(self.colour.double()).to(pixels.dtype)
        spectrum = torch.fft.rfft2(self._mix(pixels.detach(), inverse), norm="ortho") / self.scale(pixels)
        return torch.view_as_real(spectrum).contiguous()

    def noise_start(self, noise: torch.Tensor) -> torch.Tensor:
        """Coefficients from white noise (N, C, H, W): its spectrum, so the pixels start as noise coloured by
        the scale (1/f^α), normalised to unit std per image/canvas."""
        white = torch.view_as_real(torch.fft.rfft2(noise, norm="ortho"))
        return white / self.render(white).std(dim=(1, 2, 3)).view(-1, 1, 1, 1, 1)

    def pull_back(self, coefficients: torch.Tensor, pixel_grad: torch.Tensor) -> torch.Tensor:
        """∂L/∂c = Pᵀ ∂L/∂x for a pixel gradient (N, C, H, W) (P is linear: exact)."""
        with torch.enable_grad():
            probe = coefficients.detach().requires_grad_(True)
            return torch.autograd.grad(self.render(probe), probe, pixel_grad)[0]

    def settings(self) -> dict:
        return {"name": self.name, "alpha": self.alpha}
