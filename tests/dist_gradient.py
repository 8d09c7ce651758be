"""Run under torchrun by test_distributed.py: the data-parallel matching gradient of tiny float64 problems.

    torchrun --nproc-per-node 2 tests/dist_gradient.py OUT.safetensors
Rank 0 writes every mode's loss, pixel gradient and η gradient to OUT.
"""

import sys

import torch
from safetensors.torch import save_file
from test_matching import tiny_problem

from texdistill import distributed
from texdistill.method.matching import match


def gradients() -> dict[str, torch.Tensor]:
    """mode/kind → (loss, pixel gradient, η gradient) of the tiny image and texture problems."""
    out = {}
    for texture in (False, True):
        for mode in ("remat", "first-order"):
            student, synthetic, problem = tiny_problem(texture, steps=4)
            result = match(mode, student, synthetic, torch.tensor(0.05, dtype=torch.float64), problem)
            key = f"{mode}.{'texture' if texture else 'images'}"
            out.update({f"{key}.loss": result.loss.reshape(1), f"{key}.pixels": result.pixel_grad,
                        f"{key}.lr": result.lr_grad.reshape(1)})
    return out


if __name__ == "__main__":
    distributed.setup(torch.device("cpu"))
    results = gradients()
    if distributed.is_main():
        save_file({k: v.contiguous() for k, v in results.items()}, sys.argv[1])
    distributed.teardown()
