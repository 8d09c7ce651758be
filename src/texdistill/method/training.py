"""Plain supervised training pieces shared by experts and evaluation: one SGD step, test accuracy."""

from __future__ import annotations

import torch
import torch.nn as nn

from texdistill.data.space import PixelSpace
from texdistill.method.augment import DSAConfig, augment
from texdistill.method.models import classification_loss


def random_seed(generator: torch.Generator) -> int:
    """A fresh 62-bit seed drawn from `generator` (for a DSA call or a sub-generator)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))


def sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, targets: torch.Tensor,
             dsa: DSAConfig | None, seed: int, precision: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
    """One training step on x (B, C, H, W) with DSA seeded by `seed`; returns (loss, #correct) as 0-d tensors on
    x's device, so a GPU loop reads them back once per epoch, not once per step. With precision 'bfloat16' the
    network runs under autocast (convolutions and linear layers in bfloat16, the rest as autocast decides)."""
    view = augment(x, dsa, seed)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        logits = model(view)
        loss = classification_loss(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    hard = targets if targets.ndim == 1 else targets.argmax(1)
    return loss.detach(), (logits.argmax(1) == hard).sum()


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of range(n) cut into batches (the last one may be smaller)."""
    return list(torch.randperm(n, generator=generator).split(batch_size))


@torch.no_grad()
def top1_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, space: PixelSpace,
                  device: torch.device, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` on uint8 images (N, C, H, W), in batches as large as training's (larger ones
    only raise the peak memory: width 128 at 32 px holds ~0.5 GB per layer output for 1000 images)."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = space.encode(images[start:start + batch_size].to(device, non_blocking=True))
        correct += int((model(x).argmax(1).cpu() == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(images))
