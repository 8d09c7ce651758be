"""Draw a small folder of transparent "emoji-style" artwork to try the designers' flow on (no download).

    python scripts/make_example_art.py examples/art [--per-class 24] [--seed 0]

Five classes, one sub-folder each (names with spaces, as designers name things): "red apple", "blue star",
"green leaf", "yellow sun", "purple heart". Every picture is a 256-px RGBA PNG: one or a few motifs of the
class at random sizes, positions, rotations and slightly varied colours on a transparent sheet. The drawings
are texdistill's own (MIT, like the code); `tests/test_pipeline_folder.py` makes the same folder to test with.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 256
CLASSES = ("red apple", "blue star", "green leaf", "yellow sun", "purple heart")
COLOURS = {"red apple": (210, 40, 40), "blue star": (40, 90, 220), "green leaf": (40, 160, 60),
           "yellow sun": (240, 200, 30), "purple heart": (150, 50, 180)}


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
    return (*(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in colour), 255)


def _polygon(points: list[tuple[float, float]], cx: float, cy: float, scale: float, angle: float) -> list:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c)) for x, y in points]


def _motif(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float,
           rng: np.random.Generator) -> None:
    fill, outline = _jitter(COLOURS[kind], rng), (30, 30, 30, 255)
    if kind == "red apple":
        draw.ellipse((cx - r, cy - 0.9 * r, cx + r, cy + r), fill=fill, outline=outline, width=3)
        draw.line(_polygon([(0, -0.9), (0.15, -1.35)], cx, cy, r, angle), fill=(90, 50, 20, 255), width=5)
        draw.ellipse(_bbox(_polygon([(0.45, -1.1)], cx, cy, r, angle)[0], 0.22 * r), fill=(60, 150, 50, 255))
    elif kind == "blue star":
        points = [(math.cos(a) * (1 if i % 2 == 0 else 0.45), math.sin(a) * (1 if i % 2 == 0 else 0.45))
                  for i, a in enumerate(np.linspace(-math.pi / 2, 1.5 * math.pi, 11)[:10])]
        draw.polygon(_polygon(points, cx, cy, r, angle), fill=fill, outline=outline, width=3)
    elif kind == "green leaf":
        points = [(math.sin(t) * 0.45, -math.cos(t)) for t in np.linspace(0, math.pi, 12)]
        points += [(-math.sin(t) * 0.45, math.cos(t)) for t in np.linspace(0, math.pi, 12)]
        draw.polygon(_polygon(points, cx, cy, r, angle), fill=fill, outline=outline, width=3)
        draw.line(_polygon([(0, -1), (0, 1)], cx, cy, r, angle), fill=(20, 90, 30, 255), width=3)
    elif kind == "yellow sun":
        for a in np.linspace(0, 2 * math.pi, 12, endpoint=False):
            draw.line(_polygon([(0.75 * math.cos(a), 0.75 * math.sin(a)), (1.2 * math.cos(a), 1.2 * math.sin(a))],
                               cx, cy, r, angle), fill=fill, width=6)
        draw.ellipse(_bbox((cx, cy), 0.65 * r), fill=fill, outline=outline, width=3)
    else:  # purple heart
        points = [(16 * math.sin(t) ** 3 / 17, -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t)
                                                 - math.cos(4 * t)) / 17) for t in np.linspace(0, 2 * math.pi, 40)]
        draw.polygon(_polygon(points, cx, cy, r, angle), fill=fill, outline=outline, width=3)


def _bbox(centre: tuple[float, float], r: float) -> tuple[float, float, float, float]:
    return centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r


def make_art(folder: Path, per_class: int = 24, seed: int = 0) -> list[Path]:
    """Write per_class PNGs per class into folder/<class>/; returns the files."""
    rng = np.random.default_rng(seed)
    written = []
    for kind in CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sheet = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
            draw = ImageDraw.Draw(sheet)
            for _ in range(int(rng.integers(1, 4))):
                r = float(rng.uniform(0.12, 0.3)) * SIZE
                cx, cy = rng.uniform(r, SIZE - r, size=2)
                _motif(draw, kind, cx, cy, r, float(rng.uniform(-0.6, 0.6)), rng)
            path = folder / kind / f"{kind} {i + 1:02d}.png"
            sheet.save(path)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the class sub-folders go")
    parser.add_argument("--per-class", type=int, default=24, help="pictures per class (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    files = make_art(args.folder, args.per_class, args.seed)
    print(f"{len(files)} pictures in {args.folder}/ ({', '.join(CLASSES)})")


if __name__ == "__main__":
    main()
