"""The learnable synthetic set: one interface, two parametrisations.

- ImageSet: k images per class.
- TextureCanvas: one toroidal canvas per class; a sample is a set of res×res crops at uniformly random
  offsets that wrap around both edges, so crops across the seams are as likely as any other.

Both draw their randomness from a seed (`draw(seed)`), so a student step can be replayed exactly, and
return (images, labels) through `sample(seed)`; nothing else in texdistill branches on the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from texdistill.data import ImageDataset, PixelSpace
from texdistill.errors import ConfigError
from texdistill.method.initial import canvas_shape, init_pixels
from texdistill.method.parameterisation import Fourier, colour_basis
from texdistill.method.torus import image_grid, tile, wrap_crops
from texdistill.method.transfer import to_device

COLOUR_SAMPLE = 2048  # training images the Fourier colour basis is fitted on


@dataclass
class Draw:
    """The random choices of one sample() call: which images, or which canvas crops."""

    seed: int
    index: torch.Tensor  # (B,) image index (ImageSet) or class of the canvas (TextureCanvas)
    dy: torch.Tensor | None = None  # (B,) crop row offsets (TextureCanvas)
    dx: torch.Tensor | None = None  # (B,) crop column offsets (TextureCanvas)


class SyntheticSet(nn.Module):
    """Base: learnable `pixels`, fixed `labels`; subclasses define how a batch is drawn.

    With soft labels (`label_logits`, one row of class logits per image, DATM; image sets only) a batch's targets
    are the softmax of its items' rows (B, K) and are learned too; `labels` stay the class each item shows.
    """

    kind: str
    periodic: bool  # whether pixels are tori (wrap around): the pixel space's decode treats them so
    folder: str  # where its PNG previews go in a run folder

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, num_classes: int):
        super().__init__()
        self.pixels = nn.Parameter(pixels)
        self.register_buffer("labels", labels)
        self.num_classes = num_classes
        self.label_logits: nn.Parameter | None = None
        self.fourier: Fourier | None = None  # --parameterisation fourier: the pixels are rendered from
        self.coefficients: nn.Parameter | None = None  # these coefficients, which are what is learned

    # ---- what is learned: the pixels, or the coefficients they are rendered from (parameterisation.py) ----
    def use_fourier(self, alpha: float, colour: torch.Tensor | None = None,
                    coefficients: torch.Tensor | None = None, noise: bool = False) -> None:
        """Learn Fourier coefficients from now on, starting at `coefficients` (default: those of the pixels; with
        `noise`, the pixels are white noise whose spectrum becomes the coefficients: Fourier.noise_start)."""
        self.fourier = Fourier(self.pixels.shape[2:], alpha, colour)
        if noise:
            coefficients = self.fourier.noise_start(self.pixels.detach())
        start = self.fourier.coefficients(self.pixels) if coefficients is None else coefficients
        self.coefficients = nn.Parameter(start.to(self.pixels.device, self.pixels.dtype))
        self.render()

    @property
    def learned(self) -> nn.Parameter:
        """The tensor the optimisers step: the pixels, or the Fourier coefficients."""
        return self.pixels if self.fourier is None else self.coefficients

    def render(self) -> None:
        """Bring the pixels up to date with the learned coefficients (nothing to do for free pixels)."""
        if self.fourier is not None:
            with torch.no_grad():
                self.pixels.copy_(self.fourier.render(self.coefficients))

    def pull_back(self, pixel_grad: torch.Tensor) -> torch.Tensor:
        """The gradient to the learned tensor of a gradient to the pixels (exact: the map is linear)."""
        return pixel_grad if self.fourier is None else self.fourier.pull_back(self.coefficients, pixel_grad)

    def assign_pixels(self, pixels: torch.Tensor) -> None:
        """Set the pixels (e.g. projected to displayable ones) and, with Fourier, the coefficients to match."""
        with torch.no_grad():
            self.pixels.copy_(pixels)
            if self.fourier is not None:
                self.coefficients.copy_(self.fourier.coefficients(pixels))

    def use_soft_labels(self, logits: torch.Tensor) -> None:
        """Learn soft labels from now on, starting at `logits` (items, K)."""
        if tuple(logits.shape) != (len(self.labels), self.num_classes):
            raise ValueError(f"soft-label logits of shape {tuple(logits.shape)} for {len(self.labels)} items of "
                             f"{self.num_classes} classes (expected {(len(self.labels), self.num_classes)})")
        self.label_logits = nn.Parameter(logits.to(self.pixels.device, self.pixels.dtype))

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        """Training targets of items `index`: class indices (B,), or soft-label probabilities (B, K)."""
        if self.label_logits is None:
            return self.labels[index]
        return torch.softmax(self.label_logits[index], dim=1)

    def draw(self, seed: int, per_class: int | None = None) -> Draw:
        raise NotImplementedError

    def take(self, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def sample(self, seed: int, per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch (images (B, C, H, W), targets (B,) or soft (B, K)) determined by `seed`; differentiable."""
        return self.take(self.draw(seed, per_class))

    def displayable(self, space: PixelSpace, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 pixels for PNGs: `pixels` (default: the whole set) decoded by `space`, canvases as tori."""
        return space.to_uint8(self.pixels if pixels is None else pixels, periodic=self.periodic)

    def decoded(self, space: PixelSpace, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """Display values in [0, 1] (float) of `pixels` (default: the whole set), canvases as tori."""
        return space.decode(self.pixels if pixels is None else pixels, periodic=self.periodic)

    def displayed_samples(self, space: PixelSpace, crops: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What a viewer (or a judge) sees of the set: uint8 samples (B, C, H, W) of the displayed pixels and
        their classes (B,) — `crops` random wrap-around crops per canvas, or every image of an image set."""
        raise NotImplementedError

    def displayed_batch(self, space: PixelSpace, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of `draw` in display values (B, C, H, W) (1 = white, not clamped; differentiable to the
        pixels) and their classes (B,)."""
        raise NotImplementedError

    def class_pixels(self, label: int) -> torch.Tensor:
        """What a class owns, for saving/previews: (k, C, H, W) images or (1, C, Hc, Wc) canvas."""
        return self.pixels[self.labels == label].detach()

    def class_image(self, label: int, to_uint8: Callable) -> torch.Tensor:
        """One uint8 image (C, H, W) that shows what class `label` learned: its canvas, or a grid of its images."""
        raise NotImplementedError

    def tiled_image(self, label: int, to_uint8: Callable, ny: int = 3, nx: int = 3) -> torch.Tensor:
        """uint8 (C, H, W): what class `label` looks like repeated ny × nx (images: each one, in a grid)."""
        raise NotImplementedError

    def previews(self, label: int, name: str, to_uint8: Callable,
                 repeat: tuple[int, int] = (3, 3)) -> dict[str, torch.Tensor]:
        """PNG files (relative path → uint8 (C, H, W)) that show what class `label` learned, alone and tiled."""
        ny, nx = repeat
        return {f"{self.folder}/{name}.png": self.class_image(label, to_uint8),
                f"{self.folder}/{name}_{ny}x{nx}.png": self.tiled_image(label, to_uint8, ny, nx)}

    @property
    def epoch_size(self) -> int:
        """Samples per evaluation epoch: all images, or the equal-pixel-budget number of crops."""
        raise NotImplementedError

    def baselines(self, dataset: ImageDataset, space: PixelSpace,
                  generator: torch.Generator) -> dict[str, "SyntheticSet"]:
        """Sets of random real images with the same pixel budget, to compare the distilled set with."""
        raise NotImplementedError

    def settings(self) -> dict:
        """JSON settings that, with the tensors, rebuild this set (see from_state)."""
        fourier = {} if self.fourier is None else {"fourier_alpha": self.fourier.alpha}
        return {"kind": self.kind, "num_classes": self.num_classes, **fourier}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        soft = {} if self.label_logits is None else {"label_logits": self.label_logits.detach()}
        learned = {} if self.fourier is None else {"coefficients": self.coefficients.detach()}
        colour = {} if self.fourier is None or self.fourier.colour is None else {"colour": self.fourier.colour}
        return {"pixels": self.pixels.detach(), "labels": self.labels, **soft, **learned, **colour}


class ImageSet(SyntheticSet):
    """k learnable images per class; a sample is `batch` of them at random (all by default, as MTT)."""

    kind = "images"
    periodic = False
    folder = "images"

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, num_classes: int, batch: int | None = None):
        super().__init__(pixels, labels, num_classes)
        self.batch = batch

    def draw(self, seed: int, per_class: int | None = None) -> Draw:
        n = len(self.pixels)
        size = per_class * self.num_classes if per_class else (self.batch or n)
        if size >= n:
            return Draw(seed, torch.arange(n))
        generator = torch.Generator().manual_seed(seed)
        return Draw(seed, torch.randperm(n, generator=generator)[:size].sort().values)

    def take(self, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        index = to_device({"index": draw.index}, self.pixels.device)["index"]
        return self.pixels[index], self.targets(index)

    def displayed_samples(self, space: PixelSpace, crops: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.displayable(space), self.labels.cpu()

    def expert_logits(self, flat, theta: torch.Tensor) -> torch.Tensor:
        """Soft-label init (DATM), (images, K): the logits of the network `flat` at θ on each image; where the
        network picks another class, the logits of that class and of the image's own class swap places, so every
        soft label starts on its class."""
        with torch.no_grad():
            return on_own_class(flat.forward(theta, self.pixels.detach()), self.labels)

    def displayed_batch(self, space: PixelSpace, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        index = draw.index.to(self.pixels.device)
        return space.display_values(self.pixels[index]), self.labels[index]

    def class_image(self, label: int, to_uint8: Callable) -> torch.Tensor:
        return image_grid(to_uint8(self.class_pixels(label)))

    def tiled_image(self, label: int, to_uint8: Callable, ny: int = 3, nx: int = 3) -> torch.Tensor:
        return image_grid(torch.stack([tile(image, ny, nx) for image in to_uint8(self.class_pixels(label))]), pad=4)

    @property
    def epoch_size(self) -> int:
        return len(self.pixels)

    def baselines(self, dataset: ImageDataset, space: PixelSpace,
                  generator: torch.Generator) -> dict[str, SyntheticSet]:
        ipc = len(self.pixels) // self.num_classes
        return {f"random real ×{ipc}": build_synthetic(False, "real", dataset, space, generator, ipc=ipc)}

    def settings(self) -> dict:
        return {**super().settings(), "batch": self.batch}


class TextureCanvas(SyntheticSet):
    """One learnable torus per class, shape (K, C, Hc, Wc); samples are wrap-around crops of `crop` size."""

    kind = "texture"
    periodic = True
    folder = "textures"

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor, num_classes: int,
                 crop: tuple[int, int], canvas_samples: int = 1):
        super().__init__(pixels, labels, num_classes)
        if pixels.shape[2] < crop[0] or pixels.shape[3] < crop[1]:
            raise ConfigError(f"canvas {pixels.shape[2]}×{pixels.shape[3]} is smaller than the crop "
                              f"{crop[0]}×{crop[1]}; use --canvas-size ≥ 1")
        self.crop = tuple(crop)
        self.canvas_samples = canvas_samples

    def draw(self, seed: int, per_class: int | None = None) -> Draw:
        per_class = per_class or self.canvas_samples
        generator = torch.Generator().manual_seed(seed)
        index = torch.arange(self.num_classes).repeat_interleave(per_class)
        canvas_h, canvas_w = self.pixels.shape[2], self.pixels.shape[3]
        dy = torch.randint(canvas_h, (len(index),), generator=generator)
        dx = torch.randint(canvas_w, (len(index),), generator=generator)
        return Draw(seed, index, dy, dx)

    def take(self, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        at = to_device({"index": draw.index, "dy": draw.dy, "dx": draw.dx}, self.pixels.device)  # one copy
        crops = wrap_crops(self.pixels, at["index"], at["dy"], at["dx"], self.crop)
        return crops, self.labels[at["index"]]

    def use_soft_labels(self, logits: torch.Tensor) -> None:
        raise ConfigError("soft labels are for image sets; a texture canvas trains on its class (soft labels on "
                          "textures were retired: measured not to help; they last ran at commit 17673e2)")

    def displayed_samples(self, space: PixelSpace, crops: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        draw = self.draw(seed, per_class=crops)
        return wrap_crops(self.displayable(space), draw.index, draw.dy, draw.dx, self.crop), draw.index

    def displayed_batch(self, space: PixelSpace, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        shown = space.display_values(self.pixels, periodic=True)  # (K, C, Hc, Wc): ZCA acts on whole tori
        at = to_device({"index": draw.index, "dy": draw.dy, "dx": draw.dx}, self.pixels.device)
        return wrap_crops(shown, at["index"], at["dy"], at["dx"], self.crop), self.labels[at["index"]]

    def class_image(self, label: int, to_uint8: Callable) -> torch.Tensor:
        return to_uint8(self.class_pixels(label))[0]

    def tiled_image(self, label: int, to_uint8: Callable, ny: int = 3, nx: int = 3) -> torch.Tensor:
        return tile(self.class_image(label, to_uint8), ny, nx)

    @property
    def epoch_size(self) -> int:
        return self.num_classes * self.crops_per_canvas

    def baselines(self, dataset: ImageDataset, space: PixelSpace,
                  generator: torch.Generator) -> dict[str, SyntheticSet]:
        canvas_size = self.pixels.shape[2] / self.crop[0]
        tiled = build_synthetic(True, "real-tiled", dataset, space, generator, canvas_size=canvas_size,
                                canvas_samples=self.canvas_samples)
        n = self.crops_per_canvas
        images = build_synthetic(False, "real", dataset, space, generator, ipc=n)
        collage = build_synthetic(True, "real", dataset, space, generator, canvas_size=canvas_size,
                                  canvas_samples=self.canvas_samples)  # drawn last: the others stay as before
        return {"random real tiled": tiled, "random real collage": collage, f"random real ×{n} (same pixels)": images}

    @property
    def crops_per_canvas(self) -> int:
        """How many crops hold as many pixels as one canvas (the equal-budget count)."""
        return max(1, round(self.pixels.shape[2] * self.pixels.shape[3] / (self.crop[0] * self.crop[1])))

    def settings(self) -> dict:
        return {**super().settings(), "crop": list(self.crop), "canvas_samples": self.canvas_samples}


def on_own_class(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logits (B, K) with, in each row whose top class is not `labels`, that class's logit and the label's
    swapped (DATM's soft-label init: every soft label starts on its own class)."""
    logits = logits.clone()
    rows = torch.arange(len(logits), device=logits.device)
    own, top = logits[rows, labels], logits.argmax(1)
    logits[rows, top], logits[rows, labels] = own, logits[rows, top]
    return logits


def build_synthetic(texture: bool, init: str, dataset: ImageDataset, space: PixelSpace, generator: torch.Generator,
                    ipc: int = 1, canvas_size: float = 2.0, canvas_samples: int = 1,
                    batch: int | None = None, fourier_alpha: float | None = None) -> SyntheticSet:
    """A fresh ImageSet (ipc per class) or TextureCanvas (canvas_size × crop) initialised from `init`; with
    `fourier_alpha`, learned as Fourier coefficients (noise then starts as noise coloured by 1/f^α)."""
    crop = dataset.image_size
    k = dataset.num_classes
    if texture:
        canvas = canvas_shape(crop, canvas_size)
        pixels = init_pixels("texture", init, dataset, space, 1, canvas, generator)
        synthetic = TextureCanvas(pixels, torch.arange(k), k, crop, canvas_samples)
    else:
        if ipc < 1:
            raise ConfigError(f"--ipc (images per class) must be ≥ 1, got {ipc}")
        pixels = init_pixels("images", init, dataset, space, ipc, None, generator)
        synthetic = ImageSet(pixels, torch.arange(k).repeat_interleave(ipc), k, batch)
    if fourier_alpha is not None:
        colour = colour_basis(space.encode(dataset.train_images[:COLOUR_SAMPLE])) if dataset.channels > 1 else None
        synthetic.use_fourier(fourier_alpha, colour, noise=init == "noise")
    return synthetic


def from_state(settings: dict, tensors: dict[str, torch.Tensor]) -> SyntheticSet:
    """Rebuild a set saved with settings() and state_tensors()."""
    pixels, labels, k = tensors["pixels"], tensors["labels"], settings["num_classes"]
    if settings["kind"] == "texture":
        synthetic = TextureCanvas(pixels, labels, k, tuple(settings["crop"]), settings["canvas_samples"])
    else:
        synthetic = ImageSet(pixels, labels, k, settings.get("batch"))
    if "label_logits" in tensors:
        synthetic.use_soft_labels(tensors["label_logits"])
    if "coefficients" in tensors:
        synthetic.use_fourier(settings["fourier_alpha"], tensors.get("colour"), tensors["coefficients"])
    return synthetic
