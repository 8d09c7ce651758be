"""How the device computes: exact float32 and deterministic kernels for the distillation and its benchmark.

On a GPU, PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default, which turns remat's "exact"
gradient into one with a few percent error (docs/gradient-modes.md), and several CUDA kernels it uses (cuDNN
convolution backward, grid_sample backward, index_add_) are nondeterministic, so a resumed run would not equal
an uninterrupted one. The CPU build computes in full float32 and deterministically anyway.
"""

from __future__ import annotations

import os

import torch


def exact_float32() -> None:
    """Full float32 matmuls and convolutions (no TF32) from now on in this process."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def deterministic(on: bool) -> None:
    """Deterministic algorithms where PyTorch has them; ops without one warn once instead of failing (on CPU
    nothing changes: its kernels are deterministic)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for reproducible matmuls
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False


def describe(device: torch.device) -> str:
    """One line on the device and its arithmetic, for logs and benchmark tables."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
        what = f"{device} ({name}), float32 {'with TF32' if tf32 else 'exact (TF32 off)'}"
    else:
        what = f"cpu ({torch.get_num_threads()} threads), float32 exact"
    return f"{what}, deterministic algorithms {'on' if torch.are_deterministic_algorithms_enabled() else 'off'}"


def device_memory(device: torch.device) -> int:
    """Total bytes of memory of `device`: the GPU's, or the host's physical memory. Fixed for a machine, so what
    is sized from it (--kept-steps auto) comes out the same when a run resumes there."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
