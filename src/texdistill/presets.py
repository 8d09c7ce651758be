"""Named presets: field → value overrides that every stage takes the fields of (`texdistill presets` lists them).

Precedence: dataclass default < preset (--preset) < JSON config file (--config) < explicit flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from texdistill.config import RETIRED, PipelineConfig
from texdistill.errors import ConfigError
from texdistill.options import refuse_unknown

# The paper-scale presets use MTT's published settings: 100 experts × 50 epochs at lr 0.01 ("the default
# learning rate for all of our experts"), 5000 distillation iterations, 5 evaluation nets × 1000 epochs. The
# per-setting values (syn_steps, expert_epochs, max_start_epoch, ZCA, lr_img, lr_lr, initial η = MTT's
# distill.py --lr_teacher) come from MTT's README (cifar100-ipc1, ImageNet subsets) and the per-setting MTT
# commands that reproductions list (see docs/presets.md).
MTT_SCALE = {"width": 128, "num_experts": 100, "epochs": 50, "lr_teacher": 0.01, "batch_train": 256,
             "iterations": 5000, "num_models": 5, "eval_epochs": 1000}


def _mtt(data: str, out: str, zca: bool, ipc: int, syn_steps: int, expert_epochs: int, max_start_epoch: int,
         lr_img: float, lr_lr: float, syn_lr_init: float, **extra: Any) -> dict[str, Any]:
    return {**MTT_SCALE, "data": data, "out": f"runs/{out}", "zca": zca, "ipc": ipc, "syn_steps": syn_steps,
            "expert_epochs": expert_epochs, "max_start_epoch": max_start_epoch, "lr_img": lr_img,
            "lr_lr": lr_lr, "syn_lr_init": syn_lr_init, **extra}


def _texture(data: str, out: str, res: int, depth: int) -> dict[str, Any]:
    """The paper's texture setting: noise-initialised canvases twice the crop side, MTT's ImageNet values."""
    return _mtt(data, out, False, 1, 20, 2, 10, 1000.0, 1e-6, 0.01, res=res, depth=depth, texture=True,
                canvas_size=2.0, canvas_samples=1, init="noise", snapshot_every=100, ckpt_every=100)


# the CPU demo as plain MTT (the texture study's baseline); the demo below, and the Fashion-MNIST texture presets
# built on the demo, are this with a few changes
DEMO_MTT = {"data": "fashion-demo", "out": "runs/demo-mtt", "width": 64,
            "num_experts": 3, "epochs": 5,
            "texture": True, "canvas_size": 2.0, "canvas_samples": 4, "init": "real", "syn_steps": 12,
            "expert_epochs": 2, "max_start_epoch": 4, "iterations": 180, "lr_img": 1000.0, "lr_lr": 1e-5,
            "snapshot_every": 25, "ckpt_every": 50,
            "num_models": 3, "eval_epochs": 300}
# the demo: experts that saw rolled images (so the student can follow them from random-offset crops) and the
# recognition step on displayable pixels (docs/study.md "Textures that read as their class", row wrap50-rec05)
DEMO = {**DEMO_MTT, "out": "runs/demo", "wrap_shift": 0.5, "clamp_pixels": True, "recognition_lr": 0.05}

# name → (one-line description, flat field → value overrides; each stage takes the fields it has)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "demo": ("Fashion-MNIST textures on 2 CPU cores: ConvNet-3 w64, 56-px canvases of 28-px crops, experts "
             "that saw rolled images, the recognition step (2 cores: 9.5 min, 5.3 once its networks are cached)", DEMO),
    "demo-mtt": ("the demo as plain MTT: experts on centred images only, no recognition step, pixels unclamped "
                 "(the texture study's baseline)", DEMO_MTT),
    "demo-quick": ("the demo shrunk to about a minute (what the end-to-end test runs)",
                   {"data": "fashion-demo", "out": "runs/demo-quick", "width": 16,
                    "num_experts": 1, "epochs": 2,
                    "texture": True, "canvas_size": 2.0, "init": "real", "syn_steps": 5, "expert_epochs": 1,
                    "max_start_epoch": 2, "iterations": 20, "snapshot_every": 5, "ckpt_every": 10,
                    "wrap_shift": 0.5, "clamp_pixels": True, "recognition_lr": 0.05, "recognition_models": 1,
                    "recognizer_epochs": 1,
                    "num_models": 1, "eval_epochs": 30, "judge_epochs": 1}),
    "fashion-texture": ("Fashion-MNIST textures, a longer CPU run than the demo: 10 experts, 400 iterations, "
                        "5 evaluation models",
                        {**DEMO, "out": "runs/fashion-texture", "num_experts": 10, "iterations": 400,
                         "snapshot_every": 50, "num_models": 5, "eval_epochs": 500}),
    "fashion-texture-noise": ("Fashion-MNIST textures grown from noise (the paper's look): the demo from noise, "
                              "360 iterations (≈ 15 min on 2 CPU cores)",
                              {**DEMO, "out": "runs/fashion-texture-noise", "init": "noise", "iterations": 360,
                               "snapshot_every": 30, "ckpt_every": 60}),
    # your own class folders (README "Your own pictures"): --data folder --data-dir PATH; the recognition step
    # and clamped pixels, since the point is textures that look like their class; the quilt start, since a
    # collage's block edges survive as seams (docs/study.md "Round 3: own pictures")
    "folder-cpu": ("your own class folders on a CPU: 64-px crops, 16 patches per picture, 128-px canvases "
                   "started as a quilt of the pictures (≈ 20–30 min for 5 classes of a few dozen pictures on 2 "
                   "cores)",
                   {"data": "folder", "out": "runs/folder-cpu", "res": 64, "width": 64, "patches": 16,
                    "num_experts": 3, "epochs": 8,
                    "texture": True, "canvas_size": 2.0, "canvas_samples": 2, "init": "quilt", "syn_steps": 10,
                    "expert_epochs": 2, "max_start_epoch": 6, "iterations": 200, "lr_img": 1000.0, "lr_lr": 1e-5,
                    "clamp_pixels": True, "recognition_lr": 0.05, "snapshot_every": 20, "ckpt_every": 40,
                    "num_models": 3, "eval_epochs": 300}),
    "folder-gpu": ("your own class folders on a GPU: 128-px crops, 32 patches per picture, 256-px canvases, "
                   "ConvNet-5 (the paper's public texture setting)",
                   {"data": "folder", "out": "runs/folder-gpu", "res": 128, "width": 128, "depth": 5, "patches": 32,
                    "num_experts": 10, "epochs": 20,
                    "texture": True, "canvas_size": 2.0, "canvas_samples": 4, "init": "real", "syn_steps": 20,
                    "expert_epochs": 2, "max_start_epoch": 10, "iterations": 2000, "lr_img": 1000.0,
                    "lr_lr": 1e-6, "clamp_pixels": True, "recognition_lr": 0.05, "snapshot_every": 100,
                    "ckpt_every": 100, "num_models": 5, "eval_epochs": 1000}),
    "cifar10-ipc1": ("CIFAR-10, 1 image per class, ZCA, N=50 M=2 T+=2 (MTT: 46.3 %)",
                     _mtt("cifar10", "cifar10-ipc1", True, 1, 50, 2, 2, 100.0, 1e-7, 0.01)),
    "cifar10-ipc10": ("CIFAR-10, 10 images per class, ZCA, N=30 M=2 T+=20 (MTT: 65.3 %)",
                      _mtt("cifar10", "cifar10-ipc10", True, 10, 30, 2, 20, 1e5, 1e-4, 0.01)),
    "cifar10-ipc50": ("CIFAR-10, 50 images per class, no ZCA, N=30 M=2 T+=40 (MTT: 71.6 %)",
                      _mtt("cifar10", "cifar10-ipc50", False, 50, 30, 2, 40, 1000.0, 1e-5, 0.001)),
    "cifar100-ipc1": ("CIFAR-100, 1 image per class, ZCA, N=20 M=3 T+=20 (MTT: 24.3 %)",
                      _mtt("cifar100", "cifar100-ipc1", True, 1, 20, 3, 20, 1000.0, 1e-5, 0.01)),
    "cifar100-ipc10": ("CIFAR-100, 10 images per class, no ZCA, N=20 M=2 T+=20 (MTT: 40.1 %)",
                       _mtt("cifar100", "cifar100-ipc10", False, 10, 20, 2, 20, 1000.0, 1e-5, 0.01)),
    "imagenette-ipc1": ("ImageNette at 128 px, 1 image per class, ConvNet-5, N=20 M=2 T+=10 (MTT: 47.7 %)",
                        _mtt("imagenette", "imagenette-ipc1", False, 1, 20, 2, 10, 1000.0, 1e-6, 0.01,
                             res=128, depth=5)),
    "imagesquawk-texture": ("ImageSquawk textures: 256-px canvases of 128-px crops, ConvNet-5 (the public code)",
                            _texture("imagesquawk", "imagesquawk-texture", 128, 5)),
    "imagesquawk-texture-hd": ("ImageSquawk textures as in the paper: 512-px canvases of 256-px crops, ConvNet-6",
                               _texture("imagesquawk", "imagesquawk-texture-hd", 256, 6)),
    "imagefruit-texture": ("ImageFruit textures: 256-px canvases of 128-px crops, ConvNet-5",
                           _texture("imagefruit", "imagefruit-texture", 128, 5)),
}


def known_options(*config_classes: type) -> frozenset[str]:
    """The option names of every stage (what a preset or a run's config.json may hold; retired ones too, which a
    saved run may hold and config.py judges) and of `config_classes`."""
    return frozenset(f.name for cls in (PipelineConfig, *config_classes) for f in dataclasses.fields(cls)) | set(RETIRED)


def preset_values(name: str | None) -> dict[str, Any]:
    """A preset's field → value overrides (checked: a key that is no option is an error naming the nearest)."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; `texdistill presets` lists: {', '.join(PRESETS)}")
    refuse_unknown(PRESETS[name][1], known_options(), f"preset '{name}'")
    return dict(PRESETS[name][1])
