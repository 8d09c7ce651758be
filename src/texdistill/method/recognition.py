"""The recognition step: every crop of a texture should read as its class, to networks other than the experts.

Trajectory matching alone asks the student's *training* on the set to resemble the experts'. On centred objects
(Fashion-MNIST) random-offset crops of a canvas cannot do that, and neither can the experts (instance norm,
a flattening head) be taught to read such crops (docs/study.md). So each distillation iteration can add,
after MTT's update, `--recognition-steps` Adam steps (lr `--recognition-lr`) on

    R = mean_r CE(f_r(DSA(crops)), class) + γ · mean_r Σ_l (‖μ_l − μ̂_l‖ + ‖σ²_l − σ̂²_l‖)

where f_r are *recognisers*: networks of another architecture than the experts (`--recognizers`, by default
ConvNets with batch norm and max-pooling) trained on the real data by `train_recognizer` (SGD + Nesterov,
one-cycle lr, shifts and flips: a recipe the judges do not share), one seed each, cached like the judges;
the crops are `--recognition-crops` random wrap-around crops per canvas (image sets: images per class) in
display values. The second term (γ = `--recognition-prior`, after DeepInversion, Yin et al. 2020) keeps the
batch statistics of the crops at every batch-norm layer l near those the recogniser saw on real images (μ̂,
σ̂²): without it the crops turn into patterns only the recognisers read; with it what they learn carries over
to networks that took no part (measured by the judges, which must be of other architectures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from texdistill.data import ImageDataset, PixelSpace
from texdistill.method.augment import DSAConfig, augment
from texdistill.method.judges import Judge, fit, new_network
from texdistill.method.synthetic import SyntheticSet

RECOGNIZER_SEED = 7_001  # recogniser i is trained with seed RECOGNIZER_SEED + i (the judges use another)
RECOGNIZER_RECIPE = "recognizer-sgd-onecycle-shift-v1"  # change when train_recognizer changes


def translate(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) shifted by a random (dy, dx) in [−max_shift, max_shift], zero-filled, and
    flipped left-right with probability 0.5: the standard augmentation of small-image classifiers."""
    b, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(2 * max_shift + 1, (b,), generator=generator)
    dx = torch.randint(2 * max_shift + 1, (b,), generator=generator)
    rows = (dy.view(-1, 1) + torch.arange(h)).to(images.device)  # (B, h)
    cols = (dx.view(-1, 1) + torch.arange(w)).to(images.device)  # (B, w)
    out = padded.permute(0, 2, 3, 1)[torch.arange(b, device=images.device).view(-1, 1, 1), rows.unsqueeze(2),
                                     cols.unsqueeze(1)].permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out)


def train_recognizer(name: str, dataset: ImageDataset, epochs: int, device: torch.device, seed: int) -> Judge:
    """A recogniser of architecture `name` trained on the real training images (SGD + Nesterov, one-cycle lr,
    shifts of up to 1/7 of the side and flips)."""
    torch.manual_seed(seed)
    judge = new_network(name, dataset, device)
    model, h = judge.model, dataset.image_size[0]
    batches = math.ceil(len(dataset.train_images) / 128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=epochs * batches)
    generator = torch.Generator().manual_seed(seed)

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        x = translate(dataset.train_images[batch].to(device), max(1, h // 7), generator)
        return F.cross_entropy(model(judge._encode(x)), dataset.train_labels[batch].to(device))

    return fit(judge, dataset, epochs, generator, optimizer, schedule, batch_loss, f"recogniser {name}")


@dataclass
class RecognitionTerm:
    """R(pixels) of one draw: the recognisers' cross-entropy and the batch-statistics prior."""

    recognizers: list[Judge]
    prior: float  # γ
    crops: int  # samples per class per step
    dsa: DSAConfig | None
    _moments: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for judge in self.recognizers:
            judge.model.eval()  # batch norm with its running statistics; the recognisers are never trained here
            judge.model.requires_grad_(False)
            for layer in judge.model.modules():
                if isinstance(layer, nn.BatchNorm2d):
                    layer.register_forward_hook(self._record_moments)

    def _record_moments(self, layer: nn.BatchNorm2d, inputs: tuple[torch.Tensor], _output: torch.Tensor) -> None:
        x = inputs[0]  # (B, C, H, W): what the layer normalises
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        self._moments.append((mean - layer.running_mean).norm() + (var - layer.running_var).norm())

    def loss(self, synthetic: SyntheticSet, space: PixelSpace, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, the mean cross-entropy alone) on the draw `seed`; R is differentiable to synthetic.pixels."""
        shown, labels = synthetic.displayed_batch(space, synthetic.draw(seed, per_class=self.crops))
        ce, prior = 0.0, 0.0
        for judge in self.recognizers:
            self._moments.clear()
            view = augment((shown - judge.mean.to(shown)) / judge.std.to(shown), self.dsa, seed)
            ce = ce + F.cross_entropy(judge.model(view), labels)
            prior = prior + sum(self._moments, torch.zeros((), device=shown.device))
        n = len(self.recognizers)
        return (ce + self.prior * prior) / n, (ce / n).detach()
