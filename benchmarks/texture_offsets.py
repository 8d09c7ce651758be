"""Why textures lag: the matching loss of the *initial* set when the student's crops fall at random offsets,
as texture mode draws them, vs at offsets on the crop grid, where a real collage's crops are its real images.

    python benchmarks/texture_offsets.py --experts runs/demo/experts [--problems 10] [--eta 0.01,0.003]

No pixel is updated: every row starts the same expert segments (expert, start epoch, step seeds) from the
same collage canvases (the demo preset's: 56-px canvases of 2 × 2 real 28-px images, 4 crops per canvas per
step) and reports the mean ± std of L = ‖θ_N − θ*‖² / ‖θ_0 − θ*‖² at a fixed student lr η. L = 1 means the
student got nowhere; L > 1 means its steps lead *away* from the expert. Image-mode rows train on real images
(the same 4 per class as the aligned crops, and 1 per class) for comparison.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from texdistill.config import DistillConfig, build_config
from texdistill.method.distill import Distiller
from texdistill.method.matching import MatchProblem, match
from texdistill.method.synthetic import Draw, ImageSet, TextureCanvas
from texdistill.presets import preset_values


class GridCrops(TextureCanvas):
    """A TextureCanvas whose crops start on multiples of the crop size (a collage's crops = its images)."""

    def draw(self, seed: int, per_class: int | None = None) -> Draw:
        draw = super().draw(seed, per_class)
        h, w = self.crop
        return Draw(seed, draw.index, draw.dy - draw.dy % h, draw.dx - draw.dx % w)


def distiller(experts: str, **changes) -> Distiller:
    values = {**preset_values("demo"), "experts_dir": experts, "out": "/tmp/texture-offsets", **changes}
    return Distiller(build_config(DistillConfig, values))


def segments(d: Distiller, count: int, seed: int = 1) -> list[MatchProblem]:
    """`count` expert segments drawn as distillation draws them, from a generator seeded with `seed`."""
    d.state.generator.manual_seed(seed)
    return [d.draw_problem()[2] for _ in range(count)]


def mean_loss(d: Distiller, synthetic, problems: list[MatchProblem], eta: float) -> str:
    eta_tensor = torch.tensor(eta, device=d.device)  # on the run's device (a GPU run keeps everything there)
    losses = [float(match("remat", d.student, synthetic, eta_tensor, p).loss) for p in problems]
    return f"{statistics.mean(losses):.3f} ± {statistics.stdev(losses):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experts", default="runs/demo/experts", help="expert folder (demo-scale experts)")
    parser.add_argument("--problems", type=int, default=10, help="expert segments per row")
    parser.add_argument("--eta", default="0.01,0.003", help="student lrs, comma-separated")
    parser.add_argument("--samples", default="4", help="crops per canvas per student step of the random-offset "
                                                       "rows, comma-separated (the demo: 4)")
    args = parser.parse_args()
    texture = distiller(args.experts, texture=True)
    canvas = texture.synthetic
    grid = GridCrops(canvas.pixels.detach(), canvas.labels, canvas.num_classes, canvas.crop, canvas.canvas_samples)
    # the collage's 4 images per class, as an image set: what the aligned crops show
    h, w = canvas.crop
    images = canvas.pixels.detach().unfold(2, h, h).unfold(3, w, w)  # (K, C, 2, 2, h, w)
    images = images.permute(0, 2, 3, 1, 4, 5).reshape(-1, canvas.pixels.shape[1], h, w)
    per_class = images.shape[0] // canvas.num_classes
    labels = torch.arange(canvas.num_classes, device=texture.device)
    ipc4 = ImageSet(images, labels.repeat_interleave(per_class), canvas.num_classes)
    ipc1 = ImageSet(images[::per_class], labels, canvas.num_classes)
    problems = segments(texture, args.problems)
    print(f"{args.problems} expert segments from {args.experts}, {texture.cfg.syn_steps} student steps each; "
          f"matching loss at the initial set (1 = no progress)")
    print(f"{'student trains on':64s}" + "".join(f"{'η ' + e:>16s}" for e in args.eta.split(",")))
    rows = [(f"canvas crops at random offsets (texture mode), {n} per canvas",
             TextureCanvas(canvas.pixels.detach(), canvas.labels, canvas.num_classes, canvas.crop, int(n)))
            for n in args.samples.split(",")]
    rows += [("canvas crops on the crop grid (= the collage's real images)", grid),
            ("the same real images as an image set (IPC 4)", ipc4),
            ("one real image per class (IPC 1)", ipc1)]
    for name, synthetic in rows:
        print(f"{name:64s}" + "".join(f"{mean_loss(texture, synthetic, problems, float(e)):>16s}"
                                      for e in args.eta.split(",")))


if __name__ == "__main__":
    torch.set_num_threads(min(2, torch.get_num_threads()))
    main()
