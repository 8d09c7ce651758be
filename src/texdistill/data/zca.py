"""ZCA whitening as a translation-invariant filter, so it applies to images and toroidal canvases of any size.

MTT whitens each C·H·W image vector with one dense matrix (kornia's ZCAWhitening, eps 0.1):
W = U (S + eps)^-1/2 Uᵀ from the eigen-decomposition of the pixel covariance. That matrix is tied to one
image size (a canvas of another size has no whitening at all) and is (C·H·W)² floats: 9.7 GB at 3×128×128.

We assume what a ConvNet assumes anyway: image statistics do not depend on position (stationarity), and are
unchanged by horizontal and vertical flips (we average the statistics over the four flips). Then the pixel
covariance is a convolution, diagonalised by the Fourier transform, and ZCA is a filter: at every spatial
frequency f the C×C cross-spectrum S(f) is whitened by (S(f) + eps·I)^-1/2 — exactly kornia's formula with
eps added to the eigenvalues, because on a periodic grid the covariance's eigenvalues *are* the S(f).

What is stored (and fitted on the training set) is the channel-mean-free autocovariance R(δ) for every lag δ
an image can hold, (C, C, 2H-1, 2W-1): 0.6 M floats at 3×128×128. S(f) on any grid is the Fourier transform
of R sampled at that grid's frequencies; it is an average periodogram, so it is positive semi-definite at
every frequency and the filter is always invertible.

Boundaries: a canvas is a torus, so it is filtered periodically. A photo is not periodic; it is extended by
mirroring to 2H×2W (periodic and continuous), filtered, and cropped back — the DCT trick. The mirror symmetry
survives the filter (its kernel is even in both axes), so the crop loses nothing and the inverse is exact.
"""

from __future__ import annotations

import torch

DEFAULT_EPS = 0.1  # MTT / kornia ZCAWhitening regularisation, in [0, 1]-pixel units
FIT_CHUNK = 128  # images per FFT batch while fitting
FIT_MAX_IMAGES = 5000  # a fixed random subset of larger training sets
APPLY_CHUNK = 128  # images per FFT batch while filtering


class ZCAFilter:
    """Stationary ZCA whitening: whiten()/unwhiten() for (B, C, H, W) batches of any H, W."""

    def __init__(self, autocov: torch.Tensor, eps: float = DEFAULT_EPS):
        self.autocov = autocov.to(torch.float64)  # (C, C, 2H-1, 2W-1), lag (0, 0) at the centre
        self.eps = float(eps)
        self._filters: dict[tuple, torch.Tensor] = {}  # (gh, gw, inverse[, device]) → filter

    @classmethod
    def fit(cls, images: torch.Tensor, mean: torch.Tensor, eps: float = DEFAULT_EPS) -> "ZCAFilter":
        """Fit on uint8 images (N, C, H, W) (at most FIT_MAX_IMAGES of them) with per-channel mean (C,)."""
        n, c, h, w = images.shape
        if n > FIT_MAX_IMAGES:  # each image gives H·W samples per lag: a fixed subset is plenty
            pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:FIT_MAX_IMAGES]
            images, n = images[pick.sort().values], FIT_MAX_IMAGES
        # Σ over images of Re(X_c conj(X_d)) per frequency: the transform of the even part of the
        # cross-correlation, all that survives the flip averaging below
        power = torch.zeros((2 * h) * (w + 1), c, c, dtype=torch.float64)
        for start in range(0, n, FIT_CHUNK):
            x = images[start:start + FIT_CHUNK].to(torch.float32) / 255.0 - mean.view(1, -1, 1, 1).float()
            spectrum = torch.fft.rfft2(x, s=(2 * h, 2 * w))  # zero padding: linear, not circular, lags
            parts = torch.cat([spectrum.real, spectrum.imag]).flatten(2).permute(2, 1, 0)  # (F, C, 2B)
            power += torch.bmm(parts, parts.transpose(1, 2)).double()
        power = power.view(2 * h, w + 1, c, c).permute(2, 3, 0, 1)
        lags = torch.fft.irfft2(power, s=(2 * h, 2 * w)) / (n * h * w)  # biased autocovariance, (C, C, 2H, 2W)
        lags = torch.roll(lags, shifts=(h - 1, w - 1), dims=(2, 3))[:, :, :2 * h - 1, :2 * w - 1]
        # average over horizontal and vertical flips and the channel transpose: an even, symmetric filter
        lags = (lags + lags.flip(2) + lags.flip(3) + lags.flip(2, 3)) / 4
        lags = (lags + lags.transpose(0, 1)) / 2
        return cls(lags, eps)

    def whiten(self, x: torch.Tensor, periodic: bool) -> torch.Tensor:
        """Mean-free float (B, C, H, W) → whitened; `periodic`: the images are tori (canvases)."""
        return self._apply(x, periodic, inverse=False)

    def unwhiten(self, x: torch.Tensor, periodic: bool) -> torch.Tensor:
        """The exact inverse of whiten()."""
        return self._apply(x, periodic, inverse=True)

    def _apply(self, x: torch.Tensor, periodic: bool, inverse: bool) -> torch.Tensor:
        h, w = x.shape[-2:]
        if len(x) == 0:
            return x.clone()
        gh, gw = (h, w) if periodic else (2 * h, 2 * w)
        filt = self._filter_on(gh, gw, inverse, x.device)  # (Gh, Gw//2+1, C, C)
        out = []
        for chunk in x.split(APPLY_CHUNK):  # bounds the memory of the mirrored copies and spectra
            grid = chunk.float() if periodic else mirror(chunk.float())  # (b, C, Gh, Gw)
            spectrum = torch.einsum("yxcd,bdyx->bcyx", filt, torch.fft.rfft2(grid))
            out.append(torch.fft.irfft2(spectrum, s=(gh, gw))[..., :h, :w])
        return torch.cat(out).to(x.dtype)

    def _filter(self, gh: int, gw: int, inverse: bool) -> torch.Tensor:
        """(S + eps)^∓1/2 at the rfft frequencies of a gh × gw grid, cached per grid."""
        key = (gh, gw, inverse)
        if key not in self._filters:
            spectrum = self.spectrum(gh, gw)[:, : gw // 2 + 1]  # (gh, gw//2+1, C, C)
            eigenvalues, vectors = torch.linalg.eigh(spectrum)
            power = 0.5 if inverse else -0.5
            scale = (eigenvalues.clamp_min(0) + self.eps) ** power
            self._filters[key] = ((vectors * scale.unsqueeze(-2)) @ vectors.transpose(-1, -2)).to(torch.float32)
        return self._filters[key]

    def _filter_on(self, gh: int, gw: int, inverse: bool, device: torch.device) -> torch.Tensor:
        """The filter as complex64 on `device`, copied there once per grid (not once per batch)."""
        key = (gh, gw, inverse, device)
        if key not in self._filters:
            self._filters[key] = self._filter(gh, gw, inverse).to(device, torch.complex64)
        return self._filters[key]

    def spectrum(self, gh: int, gw: int) -> torch.Tensor:
        """The cross-spectrum S(f) on a gh × gw grid, (gh, gw, C, C), real symmetric PSD per frequency."""
        c, _, lh, lw = self.autocov.shape
        # lags wrap onto the grid (summed where they alias): the DFT then samples S exactly at its frequencies
        dy = ((torch.arange(lh) - lh // 2) % gh).view(-1, 1).expand(lh, lw)
        dx = ((torch.arange(lw) - lw // 2) % gw).view(1, -1).expand(lh, lw)
        folded = torch.zeros(gh, gw, c, c, dtype=torch.float64)
        folded.index_put_((dy, dx), self.autocov.permute(2, 3, 0, 1), accumulate=True)
        return torch.fft.fft2(folded, dim=(0, 1)).real

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"autocov": self.autocov.to(torch.float32), "eps": torch.tensor(self.eps)}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "ZCAFilter":
        return cls(state["autocov"], float(state["eps"]))


def mirror(x: torch.Tensor) -> torch.Tensor:
    """(…, H, W) → (…, 2H, 2W) half-sample-symmetric extension: periodic and continuous at every edge."""
    x = torch.cat([x, x.flip(-1)], dim=-1)
    return torch.cat([x, x.flip(-2)], dim=-2)
