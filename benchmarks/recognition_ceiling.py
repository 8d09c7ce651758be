"""How far can the recognition step alone take a run's initial canvases? Wearability after recognition-only steps.

    python benchmarks/recognition_ceiling.py --experts runs/demo/experts [--steps 180] [--variants demo,arch3]

Builds the initial set of the demo preset (or --preset) from the experts' run, then for each variant runs
--steps Adam steps on the recognition objective alone (method/recognition.py; no trajectory matching), clamping
the pixels as the demo does, and measures wearability with the independent judges (ResNet-10 and LeNet, 200
random wrap-around crops per canvas) — per judge, per class — and with the variant's first recogniser. Every
variant starts from the same canvases. Judges and recognisers are trained on first use and cached (--cache-dir;
VGG-11 and AlexNet recognisers take 3–4 min each on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from texdistill.config import DistillConfig, build_config
from texdistill.method.augment import dsa_of
from texdistill.method.distill import Distiller
from texdistill.method.judges import trained_on_real_data, wearability
from texdistill.method.recognition import RECOGNIZER_RECIPE, RECOGNIZER_SEED, RecognitionTerm, train_recognizer
from texdistill.method.training import random_seed
from texdistill.presets import preset_values

# name → recogniser architectures and changes to the demo's recognition settings (lr 0.05, prior 0.3, 8 crops)
VARIANTS = {
    "demo": {"archs": ("convnet-bn",) * 2},
    "crops32": {"archs": ("convnet-bn",) * 2, "crops": 32},
    "prior0": {"archs": ("convnet-bn",) * 2, "prior": 0.0},
    "prior1": {"archs": ("convnet-bn",) * 2, "prior": 1.0},
    "lr0.2": {"archs": ("convnet-bn",) * 2, "lr": 0.2},
    "no-dsa": {"archs": ("convnet-bn",) * 2, "dsa": False},
    "no-clamp": {"archs": ("convnet-bn",) * 2, "clamp": False},
    "bn+vgg": {"archs": ("convnet-bn", "vgg11-bn")},
    "bn+alexnet": {"archs": ("convnet-bn", "alexnet")},
    "arch3": {"archs": ("convnet-bn", "vgg11-bn", "alexnet")},
}
JUDGES = ("resnet10", "lenet")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experts", type=Path, required=True, help="experts folder of a run (e.g. runs/demo/experts)")
    p.add_argument("--preset", default="demo", help="preset whose initial set and DSA are used (default: demo)")
    p.add_argument("--steps", type=int, default=180, help="recognition-only Adam steps per variant (demo: 180)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--cache-dir", type=Path, help="where judges and recognisers are cached (default: the cache "
                                                   "folder beside the experts folder's run: <experts>/../cache)")
    p.add_argument("--out", type=Path, default=Path("/tmp/recognition-ceiling"), help="scratch run folder")
    args = p.parse_args()
    cfg = build_config(DistillConfig, {**preset_values(args.preset), "out": str(args.out), "iterations": 1,
                                       "experts_dir": str(args.experts),
                                       "cache_dir": str(args.cache_dir or args.experts.resolve().parent / "cache")})
    run = Distiller(cfg)
    pixels, start = run.synthetic.pixels, run.synthetic.pixels.detach().clone()
    judges = trained_on_real_data(cfg, run.dataset, JUDGES, 10, run.device)

    def wear(networks) -> dict:
        return wearability(run.synthetic, run.space, networks, 200, 0, run.dataset.class_names)

    def row(name: str, note: str, w: dict, own: str) -> None:
        worst = min(w["classes"], key=w["classes"].get)
        per_judge = " | ".join(f"{j['mean']:.3f}" for j in w["judges"].values())
        print(f"| {name} | {note} | {w['mean']:.3f} | {per_judge} | {worst} {w['classes'][worst]:.2f} | {own} |",
              flush=True)

    print(f"| variant | recogniser CE at the end | wear | {' | '.join(JUDGES)} | worst class | own recogniser |")
    print("|---" * (5 + len(JUDGES)) + "|")
    row("initial canvases", "—", wear(judges), "—")
    for name in args.variants.split(","):
        v = VARIANTS[name.strip()]
        seeds = tuple(RECOGNIZER_SEED + i for i in range(len(v["archs"])))
        recognizers = trained_on_real_data(cfg, run.dataset, v["archs"], cfg.recognizer_epochs, run.device, seeds,
                                           RECOGNIZER_RECIPE, train_recognizer)
        term = RecognitionTerm(recognizers, v.get("prior", cfg.recognition_prior), v.get("crops", cfg.recognition_crops),
                               dsa_of(cfg) if v.get("dsa", True) else None)
        with torch.no_grad():
            pixels.copy_(start)
        optimizer = torch.optim.Adam([pixels], lr=v.get("lr", cfg.recognition_lr))
        generator, started = torch.Generator().manual_seed(1), time.time()
        for _ in range(args.steps):
            with torch.enable_grad():
                loss, ce = term.loss(run.synthetic, run.space, random_seed(generator))
                pixels.grad, = torch.autograd.grad(loss, pixels)
            optimizer.step()
            if v.get("clamp", True):
                run.state.project_pixels()
        own = f"{wear(recognizers[:1])['mean']:.3f}"
        row(name, f"{float(ce):.3f} ({time.time() - started:.0f} s)", wear(judges), own)


if __name__ == "__main__":
    main()
