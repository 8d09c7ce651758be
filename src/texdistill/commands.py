"""Configs of the commands besides the stages: those that work on what a run made (mock-ups, export, the report),
the knob sweep and the benchmark of the gradient modes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from texdistill.config import DistillConfig
from texdistill.errors import ConfigError
from texdistill.names import GARMENTS, GRAD_MODES
from texdistill.options import _names, _require, option


@dataclass
class MockupConfig:
    """Render each class texture of a run as fabric on garment and product silhouettes: RUN/mockups/."""

    run: str = option("runs/demo", "run folder holding synthetic.safetensors (a finished or checkpointed "
                                   "distillation)", positional=True)
    classes: str | None = option(None, "comma-separated class names to mock up (auto: every class)")
    garments: str = option("tshirt,dress,scarf,tote,cushion", "comma-separated silhouettes "
                                                               f"({', '.join(GARMENTS)})")
    scale: float = option(4.0, "pattern scale: texture tiles across the garment's width (more = a smaller print)")
    size: int = option(512, "side of each mock-up PNG in pixels")
    shading: bool = option(True, "folds and shadows as a luminance multiply (--no-shading: flat fabric)")

    def __post_init__(self) -> None:
        unknown = [g for g in self.garment_list if g not in GARMENTS]
        _require(self.garment_list and not unknown,
                 f"unknown garment {', '.join(unknown) or '(none given)'} in --garments; choose from "
                 f"{', '.join(GARMENTS)}")
        _require(self.classes is None or bool(self.class_list), "--classes is empty; leave it out for all classes")
        _require(64 <= self.size <= 8192, f"--size must be in [64, 8192] pixels, got {self.size}")
        _require(0 < self.scale <= self.size / 8, f"--scale must be in (0, {self.size / 8:g}] (tiles of at least "
                                                  f"a few pixels at --size {self.size}), got {self.scale}")

    @property
    def class_list(self) -> list[str] | None:
        return _names(self.classes)

    @property
    def garment_list(self) -> list[str]:
        return _names(self.garments)


@dataclass
class ExportConfig:
    """Write a run's texture products: previews, a contact sheet, the evolution, print tiles, Wang tiles.

    Files go into the run folder: <textures|images>/, contact_sheet.png, evolution/, print/ (--print), wang/ (--wang).
    """

    run: str = option("runs/demo", "run folder holding synthetic.safetensors", positional=True)
    tiles: str = option("3x3", "tiled previews repeat each canvas ROWSxCOLUMNS times")
    frames: int = option(8, "canvases shown in each evolution strip (the GIF shows every snapshot, up to 60)")
    print: bool = option(False, "also write a print-ready repeat tile per class (wrap-aware upsampling, "
                                "DPI in the PNG) and a swatch of it repeated")
    size_cm: float = option(20.0, "print tile width in centimetres")
    dpi: float = option(300.0, "print resolution in dots per inch")
    wang: bool = option(False, "also cut a set of Wang tiles per class and render a non-periodic tiling")
    wang_colors: int = option(2, "edge colours per direction; the set has 2·colors² tiles (2 → 8)")
    wang_tile: int | None = option(None, "Wang tile side in canvas pixels (default: half the canvas)")
    wang_grid: int = option(12, "the rendered Wang tiling is wang_grid × wang_grid tiles")
    seed: int = option(0, "random seed of the Wang tile sources and layout")

    def __post_init__(self) -> None:
        _require(self.frames >= 2, f"--frames must be ≥ 2, got {self.frames}")
        _require(self.size_cm > 0 and self.dpi > 0, "--size-cm and --dpi must be > 0")
        _require(self.size_cm / 2.54 * self.dpi <= 20000,
                 f"a {self.size_cm} cm tile at {self.dpi} dpi is over 20000 px wide; lower --dpi or --size-cm")
        _require(self.wang_grid >= 2, f"--wang-grid must be ≥ 2, got {self.wang_grid}")
        _ = self.repeat  # validates --tiles

    @property
    def repeat(self) -> tuple[int, int]:
        """--tiles as (rows, columns)."""
        try:
            ny, nx = (int(n) for n in self.tiles.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--tiles must look like 3x3 (rows x columns), got '{self.tiles}'") from None
        _require(1 <= ny <= 20 and 1 <= nx <= 20, f"--tiles must be between 1x1 and 20x20, got {self.tiles}")
        return ny, nx


@dataclass
class ReportConfig:
    """Write RUN/report.html: one self-contained page (opens offline) built from the files of a run folder.

    Per class the texture tiled live in the browser, its previews, evolution and seam metrics; the training
    curves, the accuracy of the distilled set vs the real baselines, and the textures as garments.
    """

    run: str = option("runs/demo", "run folder holding synthetic.safetensors", positional=True)


@dataclass
class SweepConfig:
    """Distil and evaluate one run per row of a knob study and tabulate accuracy against the knobs.

    SPEC is a JSON file: {"preset": NAME, "base": {option: value, ...}, "rows": {row: {option: value, ...}}}
    (options of experts, distill and evaluate). Each row runs in OUT/<row> (resumable; finished rows are
    skipped); rows with the same expert options share one experts folder. The table: OUT/sweep.md, OUT/sweep.json.
    """

    spec: str = option("sweep.json", "the sweep's JSON spec (preset, base values, rows)", positional=True)
    out: str = option("runs/sweep", "folder of the sweep: one run folder per row, shared experts, the table")
    rows: str | None = option(None, "comma-separated rows to run (default: all, in the spec's order)")
    table_only: bool = option(False, "only rewrite the table from the rows that have finished")

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    @property
    def row_list(self) -> list[str] | None:
        return _names(self.rows)


@dataclass
class BenchConfig(DistillConfig):
    """Time one distillation iteration and measure its peak memory for each gradient mode and syn_steps.

    Runs on random pixels and a random expert segment shaped like --data (no dataset or experts needed:
    time and memory do not depend on the values). Per syn_steps, one fresh process times all modes,
    interleaved; each (mode, syn_steps) measures its peak memory in a fresh process of its own.
    """

    # options that do not shape one iteration: accepted (a run's config.json works) but not shown
    UNUSED: ClassVar[tuple[str, ...]] = (
        "data_dir", "classes", "holdout", "cache", "cache_dir", "zca", "zca_eps", "resume", "force", "experts_dir",
        "init", "iterations", "syn_steps", "expert_epochs", "min_start_epoch", "max_start_epoch", "lr_img",
        "momentum_img", "lr_lr", "grad_mode", "compile", "log_every", "snapshot_every", "ckpt_every", "max_bad_steps",
        "soft_labels", "lr_label", "match_loss", "clamp_pixels", "recognition_lr", "recognizers", "recognition_models",
        "recognition_prior", "recognition_crops", "recognition_steps", "recognizer_epochs", "val_fraction")

    channels: int | None = option(None, "image channels (default: those of --data, e.g. 3 for ImageNet subsets)")
    num_classes: int | None = option(None, "number of classes (default: that of --data)")
    steps: str = option("10,20,40,80", "comma-separated syn_steps to measure (replaces --syn-steps)")
    modes: str = option("unroll,remat,remat+kept,remat+compile,first-order,first-order+compile",
                        "comma-separated gradient modes; '+compile' runs a mode with --compile on, '+kept' with "
                        "--kept-steps as a run resolves it (plain remat/first-order: --kept-steps 0, every step "
                        "replayed); unroll is the reference of the ratio and gradient-difference columns")
    repeats: int = option(5, "timed iterations per (mode, syn_steps) after one warm-up; the fastest is reported "
                             "(other load only adds time)")
    dtype: str = option("float32", "floating-point precision of network and pixels", choices=("float32", "float64"))

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.channels is None or self.channels >= 1, f"--channels must be ≥ 1, got {self.channels}")
        _require(self.num_classes is None or self.num_classes >= 2, f"--num-classes must be ≥ 2, got {self.num_classes}")
        _require(self.repeats >= 1, f"--repeats must be ≥ 1, got {self.repeats}")
        try:
            steps = self.step_list()
        except ValueError:
            steps = []
        _require(bool(steps) and min(steps) >= 1, f"--steps must be positive integers like 10,20,40, got '{self.steps}'")
        for mode in self.mode_list():
            name, variant = mode_parts(mode)
            _require(name in GRAD_MODES and variant != "?" and not (variant and name == "unroll"),
                     f"unknown bench mode '{mode}'; use {', '.join(GRAD_MODES)}, optionally with '+compile' or "
                     f"'+kept' (not unroll)")

    def step_list(self) -> list[int]:
        return [int(s) for s in self.steps.split(",") if s.strip()]

    def mode_list(self) -> list[str]:
        return _names(self.modes)


def mode_parts(mode: str) -> tuple[str, str]:
    """'remat+compile' → ('remat', 'compile'); 'remat' → ('remat', '')."""
    name, _, variant = mode.partition("+")
    return name, variant if variant in ("compile", "kept") else (variant and "?")
