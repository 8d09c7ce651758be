"""Host → device copies of a student step's random draws, made so the host never waits for the GPU.

Every random choice of a step (crop offsets, which images, DSA parameters) is drawn on the CPU from a seeded
generator, so a step can be replayed bit for bit from its seed on any device. Moving those small tensors one
by one would cost a blocking copy each; `to_device` packs them into one buffer per dtype, pins it on CUDA and
copies it with non_blocking=True (PyTorch's pinned-memory cache keeps the buffer alive until the copy is done).
On the host itself it returns the tensors unchanged.
"""

from __future__ import annotations

import torch


def to_device(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The same tensors on `device`: one non-blocking copy per dtype (none where they are already there)."""
    device = torch.device(device)
    if all(t.device == device for t in tensors.values()):
        return tensors
    moved: dict[str, torch.Tensor] = {}
    for dtype in dict.fromkeys(t.dtype for t in tensors.values()):
        keys = [k for k, t in tensors.items() if t.dtype == dtype]
        packed = torch.cat([tensors[k].reshape(-1) for k in keys])
        if device.type == "cuda":
            packed = packed.pin_memory()
        packed = packed.to(device, non_blocking=True)
        for key, piece in zip(keys, packed.split([tensors[k].numel() for k in keys])):
            moved[key] = piece.view(tensors[key].shape)
    return {k: moved[k] for k in tensors}
