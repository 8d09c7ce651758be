"""The two formulations of the student's per-step kernels, timed eagerly at the demo's scale.

    python benchmarks/kernel_forms.py

matching.py writes each kernel (gradient, Hessian product, cross product) twice: with autograd (what runs
eagerly) and with torch.func (what torch.compile takes). One formulation for both would be simpler; this measures
what it would cost eagerly: seconds per remat / first-order gradient on the bench's random problem at the demo
preset's scale (ConvNet-3 width 64, 10 canvases 56 px, 4 crops of 28 px per class per step, 12 steps, DSA), the
fastest of 5 after a warm-up, and the relative difference of the two pixel gradients.
"""

from __future__ import annotations

import time

import torch

from texdistill.config import build_config
from texdistill.method import matching
from texdistill.method.matching import COMPILABLE_KERNELS, EAGER_KERNELS, Student, match
from texdistill.presets import preset_values
from texdistill.tools.bench import BenchConfig, bench_problem


def timed(kernels: dict, mode: str, student: Student, canvas, eta, problem, repeats: int = 5):
    """Fastest seconds of `mode` with `kernels` as the eager kernels, and its pixel gradient."""
    original = dict(matching.EAGER_KERNELS)
    matching.EAGER_KERNELS.update(kernels)
    try:
        match(mode, student, canvas, eta, problem)  # warm-up
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = match(mode, student, canvas, eta, problem)
            seconds.append(time.perf_counter() - started)
    finally:
        matching.EAGER_KERNELS.update(original)
    return min(seconds), result.pixel_grad


def main() -> None:
    # the bench's random problem at the demo preset's scale (the same builder `texdistill bench` times)
    student, canvas, eta, problem = bench_problem(build_config(BenchConfig, preset_values("demo")), 12, False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; s/gradient, fastest of 5")
    for mode in ("remat", "first-order"):
        (a, grad_a), (b, grad_b) = (timed(k, mode, student, canvas, eta, problem)
                                    for k in (dict(EAGER_KERNELS), dict(COMPILABLE_KERNELS)))
        difference = float((grad_a - grad_b).norm() / grad_a.norm())
        print(f"{mode:12s} autograd {a:.3f}  torch.func {b:.3f}  ×{b / a:.2f}  gradient difference {difference:.1e}")


if __name__ == "__main__":
    main()
