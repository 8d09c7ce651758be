"""One dataclass config per stage, named presets, and the flags generated from them.

Precedence: dataclass default < preset (--preset) < JSON config file (--config) < explicit flags.
Every field's metadata carries its help text; cli.py turns fields into `--kebab-case` flags.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from texdistill import names
from texdistill.data.images import background_rgb
from texdistill.data.source import DATA_HELP
from texdistill.names import ARCHITECTURES, DEFAULT_STRATEGY, GRAD_MODES, MATCH_LOSSES, PRECISIONS
from texdistill.options import _names, _require, option

# options retired as measured not to help (they last ran at commit 17673e2) → the value that turned each off: a
# saved run (or config file) holding that value is today's run; another value cannot be continued
RETIRED: dict[str, Any] = {"start_ramp": 0, "label_field": False, "step_pool": 0, "ema_decay": 0.0, "min_syn_lr": 0.0,
                           "head": "flat"}


@dataclass
class CommonConfig:
    """Options shared by every stage: where the run lives, the data, the model, augmentation, device."""

    # how to treat the run folder this time; never saved with a run
    RUN_CONTROL: ClassVar[frozenset[str]] = frozenset({"resume", "force"})
    # options that may differ between a run and its resumption (everything else must match); where the
    # decoded dataset is cached changes nothing about it
    RESUMABLE: ClassVar[frozenset[str]] = frozenset({"out", "device", "cache", "cache_dir"})
    LEGACY: ClassVar[dict[str, Any]] = {"val_fraction": 0.0}  # in effect before the option existed (resuming)
    # options for advanced use: flags and config keys like the rest, listed by --help-all only
    ADVANCED: ClassVar[frozenset[str]] = frozenset({"background", "cache", "cache_dir", "zca_eps", "dsa", "dsa_strategy",
                                                    "dsa_mode", "val_fraction"})

    out: str = option("runs/demo", "run folder; experts, checkpoints, textures, logs and report go here. "
                                   "Re-running a command on the same folder resumes it")
    data: str = option("fashion-demo", "dataset: 'fashion-demo' (embedded, offline), 'fashion-mnist', 'cifar10', "
                                       "'cifar100', 'tinyimagenet', an ImageNet subset ('imagenette', 'imagewoof', "
                                       "'imagemeow', 'imagesquawk', 'imagefruit', 'imageyellow') or 'folder' (your "
                                       "own class sub-folders); docs/data.md shows each layout")
    data_dir: str | None = option(None, "folder with the dataset files (not needed for fashion-demo)")
    res: int | None = option(None, "resize images to res×res (shorter side, then centre crop); default: the "
                                   "dataset's own size (28, 32, 64), 128 for ImageNet subsets and folders")
    classes: str | None = option(None, "comma-separated class names to keep, in label order (folder: sub-folder "
                                       "names; ImageNet: names or synset ids); default: all classes")
    holdout: float = option(0.1, "folder datasets without a val/ or test/ split: fraction of each class held out "
                                 "as the test set (0: none; evaluation then has nothing to test on)")
    patches: int = option(0, DATA_HELP["patches"])
    background: str = option("white", "what transparent pixels (PNG art) are composited onto: white, black or #rrggbb")
    val_fraction: float = option(0.1, DATA_HELP["val_fraction"])
    cache: bool = option(True, "reuse decoded datasets and the user cache of trained experts, judges and recognisers")
    cache_dir: str | None = option(None, "where decoded datasets are kept (default: <out>/cache); share one "
                                         "folder between runs to decode only once")
    zca: bool = option(False, "ZCA-whiten the images (as MTT's --zca); fitted on the training set by "
                              "`experts`, which stores it, and then used by every later stage")
    zca_eps: float = option(0.1, "ZCA regularisation added to the covariance eigenvalues (MTT/kornia: 0.1)")
    width: int = option(128, "ConvNet channels per layer (128 in the literature; 64 is ~3× faster on CPU)")
    depth: int | None = option(None, "ConvNet depth; default from resolution (28/32 px → 3, 64 → 4, 128 → 5)")
    dsa: bool = option(True, "differentiable siamese augmentation on every training batch")
    dsa_strategy: str = option(DEFAULT_STRATEGY, "DSA transforms joined by '_' (or 'none')")
    dsa_mode: str = option("one", "'one': one random transform of the strategy per batch (MTT); "
                                  "'all': every transform in sequence", choices=("one", "all"))
    device: str = option("auto", "'auto' picks CUDA when available, else CPU", choices=("auto", "cpu", "cuda"))
    seed: int = option(0, "random seed; the same seed and config give the same result on CPU at one thread count "
                          "and with the same cached networks (either may move results within their spread)")
    resume: bool = option(False, "continue the run in --out and fail if there is none (without it, an existing "
                                 "run with the same options is continued too)")
    force: bool = option(False, "start this stage over: discard its previous state in --out (checkpoint and "
                                "snapshots / trajectories / eval.json), even if it was made with other options")

    def __post_init__(self) -> None:
        _require(not (self.resume and self.force), "--resume continues the run in --out and --force discards it; "
                                                    "pass only one of them")
        _require(not self.resume or self.run_dir.is_dir(),
                 f"--resume: there is no run folder {self.out}; drop --resume to start a new run there")
        _require(self.device != "cuda" or torch.cuda.is_available(),
                 "--device cuda was requested but no CUDA GPU is visible; use --device cpu (or auto)")
        _require(self.res is None or self.res >= 4, f"--res must be ≥ 4, got {self.res}")
        _require(self.width >= 1, f"--width must be ≥ 1, got {self.width}")
        _require(self.depth is None or self.depth >= 1, f"--depth must be ≥ 1, got {self.depth}")
        _require(0 <= self.holdout < 1, f"--holdout must be in [0, 1), got {self.holdout}")
        _require(self.zca_eps > 0, f"--zca-eps must be > 0, got {self.zca_eps}")
        _require(self.classes is None or bool(self.class_list), "--classes needs at least one class name")
        _require(self.patches >= 0, f"--patches must be ≥ 0, got {self.patches}")
        _require(0 <= self.val_fraction < 1, f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        background_rgb(self.background)  # one clear line for a colour it cannot read
        names.dsa_transforms(self.dsa_strategy)  # one line naming the known transforms

    def torch_device(self) -> torch.device:
        """The device to run on; under torchrun each process takes the GPU of its LOCAL_RANK — or the only GPU
        it sees, where the launcher gives each process one (CUDA_VISIBLE_DEVICES per rank, as Slurm does)."""
        if self.device == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu")
        visible = torch.cuda.device_count()
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if visible > 1 else 0)

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    @property
    def class_list(self) -> tuple[str, ...] | None:
        names = _names(self.classes)
        return None if names is None else tuple(names)

    def dataset_options(self) -> dict[str, Any]:
        """Keyword arguments of texdistill.data.find_dataset / load_dataset (without the cache)."""
        return {"name": self.data, "classes": self.class_list, **{k: getattr(self, k) for k in (
                "data_dir", "res", "holdout", "patches", "background", "val_fraction")}}

    @property
    def cache_path(self) -> Path | None:
        """Where decoded datasets are cached, or None with --no-cache."""
        if not self.cache:
            return None
        return Path(self.cache_dir) if self.cache_dir else self.run_dir / "cache"

    def to_dict(self) -> dict[str, Any]:
        """The options as saved with a run (config.json, checkpoints), without the run-control flags."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUN_CONTROL}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """option → its default value (options without a default are left out)."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    def changes_from(self, saved: dict[str, Any]) -> list[str]:
        """'--option old → new' for every option that differs from `saved` and must not change on resume."""
        ignored = self.RESUMABLE | self.RUN_CONTROL
        new = self.to_dict()
        retired = [f"--{k.replace('_', '-')} {v} (retired; it last ran at commit 17673e2)"
                   for k, v in sorted(saved.items()) if k in RETIRED and v != RETIRED[k]]
        # an option added after `saved` was written had its default then; one retired since was off
        saved = {**self.defaults(), **self.LEGACY, **{k: v for k, v in saved.items() if k not in RETIRED}}
        keys = sorted(k for k in set(saved) | set(new) if k not in ignored and saved.get(k) != new.get(k))
        return [f"--{k.replace('_', '-')} {saved.get(k, 'unset')} → {new.get(k, 'unset')}" for k in keys] + retired


@dataclass
class ExpertsConfig(CommonConfig):
    """Train expert networks on the real data and store their parameter trajectories."""

    RESUMABLE = CommonConfig.RESUMABLE | {"num_experts"}
    ADVANCED = CommonConfig.ADVANCED | {"momentum_teacher", "batch_train", "precision"}

    num_experts: int = option(5, "number of expert trajectories (the paper uses 100; 5–20 suffice for small runs)")
    epochs: int = option(10, "epochs per expert; a trajectory stores epochs + 1 parameter vectors (MTT: 50)")
    lr_teacher: float = option(0.01, "SGD learning rate of the experts (MTT: 0.01)")
    momentum_teacher: float = option(0.0, "SGD momentum of the experts (MTT: 0)")
    batch_train: int = option(256, "batch size of expert training")
    wrap_shift: float = option(0.0, "probability that a training image is rolled by a random offset with "
                                    "wrap-around (as a crop of it tiled): experts that have seen what texture "
                                    "crops look like; 0 = MTT's experts")
    precision: str = option("float32", "arithmetic of expert training: 'bfloat16' runs the network under autocast, "
                                       "the trajectories stay float32 (2 AVX-512-BF16 CPU cores: the network 1.25× "
                                       "faster, a whole epoch 1.02×; docs/performance.md)", choices=PRECISIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.num_experts >= 1, f"--num-experts must be ≥ 1, got {self.num_experts}")
        _require(self.epochs >= 1, f"--epochs must be ≥ 1, got {self.epochs}")
        _require(self.lr_teacher > 0, f"--lr-teacher must be > 0, got {self.lr_teacher}")
        _require(self.batch_train >= 1, f"--batch-train must be ≥ 1, got {self.batch_train}")
        _require(0 <= self.wrap_shift <= 1, f"--wrap-shift must be in [0, 1], got {self.wrap_shift}")


CANVAS_INITS = ("real-tiled", "quilt")  # --init values that make a canvas
COMPILE_AUTO_STEPS = 20_000  # student steps that repay the one-off compile (2 CPU cores, docs/gradient-modes.md)


@dataclass
class DistillConfig(CommonConfig):
    """Distil the real data into synthetic images or tileable class textures by trajectory matching."""

    # the learning rates may be lowered to get a diverging run going again; the gradient mode, --compile and
    # --kept-steps change how the gradient is computed (to save memory or time), not what is learned
    RESUMABLE = CommonConfig.RESUMABLE | {"iterations", "log_every", "snapshot_every", "ckpt_every",
                                          "max_bad_steps", "lr_img", "lr_lr", "lr_label", "grad_mode", "compile",
                                          "kept_steps", "deterministic"}
    ADVANCED = CommonConfig.ADVANCED | {"min_start_epoch", "momentum_img", "syn_lr_init", "soft_labels", "lr_label",
                                        "recognizers", "recognition_models", "recognition_prior", "recognition_crops",
                                        "recognition_steps", "recognizer_epochs", "match_loss", "compile", "kept_steps",
                                        "deterministic", "log_every", "max_bad_steps", "fourier_alpha",
                                        "optimizer_img"}
    # options that only one mode reads (besides the CANVAS_INITS, texture only); see refuse_other_mode
    IMAGE_ONLY: ClassVar[tuple[str, ...]] = ("ipc", "batch_syn")
    TEXTURE_ONLY: ClassVar[tuple[str, ...]] = ("canvas_size", "canvas_samples")

    experts_dir: str | None = option(None, "folder of expert trajectories (default: <out>/experts)")
    texture: bool = option(False, "learn one seamlessly tileable canvas per class instead of images")
    ipc: int = option(1, "images per class (image mode)")
    canvas_size: float = option(2.0, "texture mode: canvas side / crop side (the paper: 2)")
    canvas_samples: int = option(1, "texture mode: random wrap-around crops per canvas per student step")
    init: str = option("real", "initial pixels: 'real' images (texture: a collage of real images), 'quilt' "
                               "(texture: real images joined along minimum-error cuts on the torus: no straight "
                               "edges; made for pictures on a plain background, it cuts centred objects such as "
                               "Fashion-MNIST's apart), 'real-tiled' (texture: one real image repeated) or "
                               "Gaussian 'noise'",
                       choices=("real", "noise", "real-tiled", "quilt"))
    parameterisation: str = option("pixels", "what is learned: the 'pixels' (MTT) or 'fourier' coefficients scaled "
                                             "by 1/frequency^α (circulant: low frequencies first)", ("pixels", "fourier"))
    fourier_alpha: float = option(0.5, "--parameterisation fourier: α of the 1/frequency^α scale (0 = pixel steps)")
    iterations: int = option(1000, "distillation iterations (MTT: 5000; textures converge over 10^4)")
    syn_steps: int = option(20, "student SGD steps per iteration (N); more = better match, more compute")
    expert_epochs: int = option(2, "expert epochs the student must cover in syn_steps steps (M)")
    min_start_epoch: int = option(0, "smallest expert epoch a student starts from")
    max_start_epoch: int = option(20, "start epochs are drawn from [min_start_epoch, max_start_epoch); "
                                      "needs max_start_epoch − 1 + expert_epochs ≤ the experts' epochs")
    batch_syn: int | None = option(None, "image mode: synthetic images per student step (default: all)")
    lr_img: float = option(1000.0, "learning rate of the pixels or coefficients (SGD, MTT: 1000 at 32 px, 10^4 for "
                                   "ImageNet)")
    momentum_img: float = option(0.5, "SGD momentum of the pixels")
    optimizer_img: str = option("sgd", "the optimiser of what is learned (the pixels or the Fourier coefficients): "
                                       "'sgd' with --momentum-img (MTT) or 'adam' (feature-visualisation "
                                       "practice; --lr-img is then Adam's step size: 0.1 grew Fourier canvases "
                                       "from noise best)",
                                choices=("sgd", "adam"))
    lr_lr: float = option(1e-5, "SGD learning rate of the learnable student lr η (MTT: 1e-5 … 1e-6)")
    syn_lr_init: float | None = option(None, "initial student lr η (default: the experts' lr)")
    soft_labels: bool = option(False, "image mode: learn a soft label per image (class logits, initialised from "
                                      "the experts' logits, DATM): the student trains on their softmax")
    lr_label: float = option(2.0, "SGD learning rate of the soft-label logits (momentum 0.9; DATM: 2–10)")
    clamp_pixels: bool = option(False, "keep the pixels displayable: after every update, values a PNG cannot show "
                                       "(below black, above white) are clamped, so what is evaluated and judged "
                                       "is what the texture's PNG shows (MTT does not clamp)")
    recognition_lr: float = option(0.0, "texture mode: after each MTT update, Adam steps with this lr on the "
                                        "recognisers' cross-entropy of random crops plus a batch-statistics prior, "
                                        "so every crop reads as its class (docs/study.md 'Textures that read as "
                                        "their class'); 0 = MTT alone")
    recognizers: str = option("convnet-bn", "architecture of the recognisers (trained on the real data, cached); "
                                            "the judges of wearability must be of other architectures")
    recognition_models: int = option(2, "recognisers (one seed each)")
    recognition_prior: float = option(0.3, "weight γ of the batch-statistics prior (DeepInversion): keeps what the "
                                           "crops learn readable by networks other than the recognisers")
    recognition_crops: int = option(8, "crops per canvas (image sets: images per class) per recognition step")
    recognition_steps: int = option(1, "recognition steps per iteration")
    recognizer_epochs: int = option(6, "training epochs of each recogniser")
    match_loss: str = option("normalized", "the trajectory-matching loss: 'normalized' is MTT's ‖θ_N − θ*‖² / "
                                           "‖θ_0 − θ*‖²; 'per-layer' takes that ratio per parameter tensor and "
                                           "averages it, so small layers count as much as large ones",
                             choices=MATCH_LOSSES)
    grad_mode: str = option("remat", "how the gradient through the student is computed: 'remat' is exact; it "
                                     "replays steps backwards instead of keeping their graphs, as many as "
                                     "--kept-steps says; 'unroll' keeps the whole graph (exact, memory grows with "
                                     "syn_steps); 'first-order' drops the student's Hessian (approximate; "
                                     "docs/gradient-modes.md)",
                            choices=GRAD_MODES)
    compile: str = option("auto", "torch.compile the per-step kernels of remat/first-order: faster per "
                                  "iteration (CPU: ~1.5–2×) after a one-off compile of 1–3 min (cached); "
                                  f"'auto' compiles when iterations × syn_steps ≥ {COMPILE_AUTO_STEPS}",
                          choices=("auto", "on", "off"))
    kept_steps: str = option("auto", "remat/first-order: the last K student steps keep their graph from the "
                                     "forward pass instead of being replayed (exact either way; each kept step "
                                     "saves about a fifth of its time and holds one step's graph in memory); "
                                     "'auto': as many as fit in a quarter of the device's memory; 0: replay every "
                                     "step (least memory)")
    deterministic: bool = option(True, "deterministic GPU kernels (where PyTorch has them) and full float32 "
                                       "(no TF32), so a GPU run is exact and a resumed run equals an uninterrupted "
                                       "one; --no-deterministic lets cuDNN pick faster kernels (the CPU is exact "
                                       "and deterministic either way)")
    log_every: int = option(10, "write a log.jsonl line every this many iterations")
    snapshot_every: int = option(50, "keep a snapshot of the synthetic set every this many iterations "
                                     "(the evolution view)")
    ckpt_every: int = option(50, "checkpoint (resumable) and refresh the PNGs every this many iterations")
    max_bad_steps: int = option(10, "a non-finite loss or gradient restores the last good state and halves "
                                    "the pixel lr; stop after this many in a row")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("ipc", "canvas_samples", "iterations", "syn_steps", "expert_epochs", "log_every",
                     "snapshot_every", "ckpt_every", "max_bad_steps"):
            _require(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        _require(self.canvas_size >= 1, f"--canvas-size must be ≥ 1 (canvas side / crop side), got {self.canvas_size}")
        _require(0 <= self.min_start_epoch < self.max_start_epoch,
                 f"need 0 ≤ --min-start-epoch < --max-start-epoch, got {self.min_start_epoch}, {self.max_start_epoch}")
        _require(self.batch_syn is None or self.batch_syn >= 1, f"--batch-syn must be ≥ 1, got {self.batch_syn}")
        _require(self.lr_img > 0 and self.lr_lr >= 0, "--lr-img must be > 0 and --lr-lr ≥ 0")
        _require(self.syn_lr_init is None or self.syn_lr_init > 0, "--syn-lr-init must be > 0")
        _require(self.lr_label > 0, f"--lr-label must be > 0, got {self.lr_label}")
        _require(self.fourier_alpha >= 0, f"--fourier-alpha must be ≥ 0, got {self.fourier_alpha}")
        _require(self.recognition_lr >= 0, f"--recognition-lr must be ≥ 0, got {self.recognition_lr}")
        _require(self.recognizers in ARCHITECTURES, f"unknown --recognizers '{self.recognizers}'; choose from "
                                                    f"{', '.join(ARCHITECTURES)}")
        for name in ("recognition_models", "recognition_crops", "recognition_steps", "recognizer_epochs"):
            _require(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        _require(str(self.kept_steps) == "auto" or str(self.kept_steps).isdigit(),
                 f"--kept-steps must be 'auto' or a whole number ≥ 0, got {self.kept_steps}")
        _require(self.recognition_prior >= 0, f"--recognition-prior must be ≥ 0, got {self.recognition_prior}")
        _require(not (self.texture and self.soft_labels), "--soft-labels applies to image mode; texture canvases "
                 "train on their class (soft labels on textures were retired: measured not to help)")

    def refuse_other_mode(self, given: Collection[str]) -> None:
        """One line naming the options of the other mode given (flags, config file, keywords, sweep rows; not a
        preset's) with a value other than their default: this mode would silently ignore them."""
        wrong = [f"--{k.replace('_', '-')} {getattr(self, k)}" for k in (self.IMAGE_ONLY if self.texture else
                 self.TEXTURE_ONLY) if k in given and getattr(self, k) != self.defaults()[k]]
        wrong += [f"--init {self.init}"] if not self.texture and "init" in given and self.init in CANVAS_INITS else []
        them = "them" if len(wrong) > 1 else "it"
        _require(not wrong or not self.texture, f"{', '.join(wrong)} appl{'y' if len(wrong) > 1 else 'ies'} to image "
                 f"mode; texture mode learns one canvas per class (more pixels: --canvas-size): drop {them} or add "
                 f"--no-texture")
        _require(not wrong, f"{', '.join(wrong)} appl{'y' if len(wrong) > 1 else 'ies'} to texture mode (crops of "
                            f"one canvas per class): add --texture or drop {them}")

    @property
    def experts_path(self) -> Path:
        return Path(self.experts_dir) if self.experts_dir else self.run_dir / "experts"

    def compile_kernels(self) -> bool:
        """Whether the student's kernels go through torch.compile (see --compile)."""
        if self.compile == "auto":
            return self.grad_mode != "unroll" and self.iterations * self.syn_steps >= COMPILE_AUTO_STEPS
        return self.compile == "on"


@dataclass
class EvalConfig(CommonConfig):
    """Train fresh networks on the distilled set only and report real test accuracy, with baselines."""

    # wearability is recomputed by every run, so its options may change between a run and its resumption
    RESUMABLE = CommonConfig.RESUMABLE | {"num_models", "baselines", "models", "judges", "judge_epochs", "wear_crops"}
    ADVANCED = CommonConfig.ADVANCED | {"eval_momentum", "eval_weight_decay", "eval_batch", "judge_epochs", "wear_crops"}

    num_models: int = option(5, "networks trained from scratch per evaluated set and architecture (mean ± sample "
                                "std over them; 3 or more for a ± that means something)")
    models: str = option("convnet", "architectures to evaluate on, comma-separated: 'convnet' (the distillation's "
                                    "own), and for cross-architecture results convnet-bn, resnet18, resnet18-bn, "
                                    "resnet10, vgg11, vgg11-bn, alexnet (docs/study.md 'Cross-architecture')")
    eval_epochs: int = option(1000, "training epochs on the synthetic set (MTT: 1000; lr × 0.1 at half)")
    eval_lr: float | None = option(None, "SGD lr for the distilled set (default: the learned η)")
    eval_momentum: float = option(0.9, "SGD momentum")
    eval_weight_decay: float = option(5e-4, "SGD weight decay")
    eval_batch: int = option(256, "batch size on the synthetic set")
    baselines: bool = option(True, "also evaluate real images at the same pixel budget")
    judges: str = option("vit-tiny,lenet", "architectures of the independent judges of wearability (2 seeds each, "
                                           "their own recipe, trained on the real data, cached); a judge of the "
                                           "experts' or the recognisers' family is left out; 'none' skips "
                                           "wearability")
    judge_epochs: int = option(10, "training epochs of each judge (once per dataset, resolution and class list)")
    split: str = option("test", DATA_HELP["split"], choices=("val", "test"))
    wear_crops: int = option(200, "random wrap-around crops per canvas that the judges classify (wearability)")

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [j for j in self.judge_list if j not in ARCHITECTURES]
        _require(not unknown, f"unknown judge architecture {', '.join(unknown)} in --judges; choose from "
                              f"{', '.join(ARCHITECTURES)} or 'none'")
        unknown = [m for m in _names(self.models) or [] if m not in ARCHITECTURES]
        _require(self.model_list and not unknown, f"unknown architecture {', '.join(unknown) or '(none given)'} in "
                                                  f"--models; choose from {', '.join(ARCHITECTURES)}")
        for name in ("num_models", "eval_epochs", "eval_batch", "judge_epochs", "wear_crops"):
            _require(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        _require(self.eval_lr is None or self.eval_lr > 0, "--eval-lr must be > 0")

    @property
    def model_list(self) -> tuple[str, ...]:
        """The architectures to evaluate on, in order, without repeats."""
        return tuple(dict.fromkeys(_names(self.models) or []))

    @property
    def judge_list(self) -> tuple[str, ...]:
        """The judges' architectures (empty with --judges none)."""
        return tuple(j for j in _names(self.judges) or [] if j.lower() != "none")


@dataclass
class PipelineConfig(EvalConfig, DistillConfig, ExpertsConfig):
    """Run every stage with one set of options: experts → distill → evaluate → mock-ups → export → report.

    Re-running the same command resumes where it stopped (finished experts are skipped, the distillation
    continues from its checkpoint, the evaluation from its last model). The experts live in OUT/experts.
    """

    RESUMABLE = EvalConfig.RESUMABLE | DistillConfig.RESUMABLE | ExpertsConfig.RESUMABLE
    ADVANCED = EvalConfig.ADVANCED | DistillConfig.ADVANCED | ExpertsConfig.ADVANCED

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.experts_dir is None, "`texdistill run` trains its experts in OUT/experts; to distil from "
                                           "experts elsewhere run `texdistill distill --experts-dir …` and "
                                           "`texdistill evaluate` instead")


def build_config(config_class: type, values: dict[str, Any], given: Collection[str] | None = None) -> Any:
    """Instantiate a stage config from flat values, ignoring the keys of other stages. `given`: the options the
    user set (not those of a preset), refused where they belong to the other mode."""
    names = {f.name for f in dataclasses.fields(config_class)}
    cfg = config_class(**{k: v for k, v in values.items() if k in names})
    if given is not None and isinstance(cfg, DistillConfig):
        cfg.refuse_other_mode(given)
    return cfg
