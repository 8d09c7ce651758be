"""Garment and product silhouettes for the mock-ups, drawn here as vector paths (y points down).

The shapes are texdistill's own work, written for this project and released under its MIT licence with the
rest of the code; nothing is downloaded or traced. Each garment is three sets of SVG-style paths (absolute
M, L, C and Z commands only): the `outline` (the fabric area, a union of closed subpaths), `details`
(open seam, hem and collar lines drawn thinly over the fabric) and `folds` (lines along which the fabric
creases, turned into soft shadows by mockup.py). One parser turns them into polygons for Pillow and back
into SVG `d` strings for the HTML report, so the PNG and the browser show the same shape.

Every garment is normalised so that its outline spans x ∈ [0, WIDTH]; the pattern scale ("tiles per
garment width") is defined on that box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from texdistill import names

WIDTH = 100.0  # every garment's outline spans x ∈ [0, WIDTH] after normalisation
BEZIER_POINTS = 24  # points per cubic segment when a path is flattened into a polygon

Polyline = list[tuple[float, float]]


def parse_path(d: str) -> list[tuple[list[tuple[float, float]], bool]]:
    """SVG path data (absolute M/L/C/Z) → subpaths as (flattened points, closed?)."""
    tokens = re.findall(r"[MLCZ]|-?\d*\.?\d+", d)
    subpaths: list[tuple[list[tuple[float, float]], bool]] = []
    points: list[tuple[float, float]] = []
    i = 0

    def numbers(n: int) -> list[float]:
        nonlocal i
        values = [float(t) for t in tokens[i:i + n]]
        if len(values) != n or any(t in "MLCZ" for t in tokens[i:i + n]):
            raise ValueError(f"path {d!r}: a command lacks its numbers near token {i}")
        i += n
        return values

    while i < len(tokens):
        command = tokens[i]
        i += 1
        if command == "M":
            if points:
                subpaths.append((points, False))
            points = [tuple(numbers(2))]
        elif command == "L":
            points.append(tuple(numbers(2)))
        elif command == "C":
            x1, y1, x2, y2, x, y = numbers(6)
            x0, y0 = points[-1]
            for k in range(1, BEZIER_POINTS + 1):
                t = k / BEZIER_POINTS
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
                points.append((a * x0 + b * x1 + c * x2 + e * x, a * y0 + b * y1 + c * y2 + e * y))
        elif command == "Z":
            subpaths.append((points, True))
            points = []
        else:
            raise ValueError(f"path {d!r}: unsupported token {command!r} (use absolute M, L, C, Z)")
    if points:
        subpaths.append((points, False))
    return subpaths


def _map_path(d: str, scale: float, dx: float, dy: float) -> str:
    """The same path data with every coordinate pair mapped by (x, y) → ((x − dx)·scale, (y − dy)·scale)."""
    out, numbers = [], []
    for token in re.findall(r"[MLCZ]|-?\d*\.?\d+", d):
        if token in "MLCZ":
            out.append(token)
            continue
        numbers.append(float(token))
        if len(numbers) == 2:
            out.append(f"{(numbers[0] - dx) * scale:.2f} {(numbers[1] - dy) * scale:.2f}")
            numbers = []
    return " ".join(out)


@dataclass(frozen=True)
class Garment:
    """A silhouette (outline subpaths), its seam lines and its fold lines, in design units."""

    name: str
    title: str
    outline: tuple[str, ...]
    details: tuple[str, ...] = ()
    folds: tuple[str, ...] = ()

    @cached_property
    def normalised(self) -> "Garment":
        """This garment moved and scaled so its outline spans x ∈ [0, WIDTH] and starts at y = 0."""
        points = [p for d in self.outline for sub, _ in parse_path(d) for p in sub]
        x0, x1 = min(x for x, _ in points), max(x for x, _ in points)
        y0 = min(y for _, y in points)
        scale = WIDTH / (x1 - x0)

        def move(paths: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(_map_path(d, scale, x0, y0) for d in paths)

        return Garment(self.name, self.title, move(self.outline), move(self.details), move(self.folds))

    @property
    def height(self) -> float:
        """Height of the normalised outline (its width is WIDTH)."""
        return max(y for d in self.normalised.outline for sub, _ in parse_path(d) for _, y in sub)

    def polygons(self, which: str) -> list[tuple[Polyline, bool]]:
        """Flattened normalised subpaths of 'outline', 'details' or 'folds' as (points, closed?)."""
        return [sub for d in getattr(self.normalised, which) for sub in parse_path(d)]


def _fringe(x0: float, y0: float, x1: float, y1: float, strands: int, length: float) -> str:
    """Threads hanging from the edge (x0, y0)–(x1, y1): a scarf's fringe, as open lines."""
    parts = []
    for k in range(strands):
        t = (k + 0.5) / strands
        x, y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
        parts.append(f"M {x:.2f} {y:.2f} L {x + 0.6 * (k % 2 - 0.5):.2f} {y + length:.2f}")
    return " ".join(parts)


TSHIRT = Garment(
    "tshirt", "T-shirt",
    outline=("M 78 20 C 86 33 114 33 122 20 L 156 30 L 192 64 L 172 86 L 152 70 C 150 110 152 160 154 192 "
             "C 120 197 80 197 46 192 C 48 160 50 110 48 70 L 28 86 L 8 64 L 44 30 Z",),
    details=("M 81 22 C 88 37 112 37 119 22",  # collar rib
             "M 187 59 L 167 81", "M 13 59 L 33 81",  # sleeve hems
             "M 156 30 C 148 44 148 58 152 70", "M 44 30 C 52 44 52 58 48 70",  # armholes
             "M 47 184 C 80 189 120 189 153 184"),  # hem
    folds=("M 148 82 C 136 95 126 102 116 112", "M 52 82 C 64 95 74 102 84 112",
           "M 76 128 C 74 150 72 170 70 190", "M 127 140 C 129 160 131 175 133 190",
           "M 166 44 C 170 54 173 62 179 70", "M 34 44 C 30 54 27 62 21 70",
           "M 100 150 C 98 165 101 178 99 192"),
)

DRESS = Garment(
    "dress", "Dress",
    outline=("M 68 10 L 82 10 C 86 34 114 34 118 10 L 132 10 C 132 30 136 42 142 52 C 136 70 128 82 128 96 "
             "C 146 140 166 200 178 250 C 130 262 70 262 22 250 C 34 200 54 140 72 96 "
             "C 72 82 64 70 58 52 C 64 42 68 30 68 10 Z",),
    details=("M 72 96 C 90 101 110 101 128 96",  # waist seam
             "M 84 12 C 88 31 112 31 116 12",  # neckline trim
             "M 25 243 C 70 255 130 255 175 243"),  # hem
    folds=("M 86 104 C 80 150 70 200 58 253", "M 100 106 C 101 160 99 210 100 258",
           "M 114 104 C 120 150 130 200 142 253", "M 78 62 L 85 84", "M 122 62 L 115 84"),
)

SCARF = Garment(
    "scarf", "Scarf",
    outline=("M 10 95 C 10 35 35 5 60 5 C 85 5 110 35 110 95 L 113 215 L 77 219 L 76 95 "
             "C 76 62 70 42 60 42 C 50 42 44 62 44 95 L 46 252 L 8 248 Z",),
    details=("M 10 91 L 44 99", "M 76 99 L 110 91",  # where the loop folds into the tails
             "M 9 241 L 46 245", "M 77 212 L 113 208",  # woven borders above the fringe
             _fringe(8, 248, 46, 252, 12, 12), _fringe(77, 219, 113, 215, 11, 12)),
    folds=("M 27 108 C 25 150 29 200 26 244", "M 95 108 C 97 140 92 180 94 210",
           "M 22 60 C 32 36 44 22 58 16", "M 98 60 C 90 38 78 24 64 18"),
)

TOTE = Garment(
    "tote", "Tote bag",
    outline=("M 20 80 L 180 80 L 176 230 C 175 238 170 242 162 242 L 38 242 C 30 242 25 238 24 230 Z",
             "M 50 104 L 50 84 C 50 20 80 2 100 2 C 120 2 150 20 150 84 L 150 104 L 138 104 L 138 84 "
             "C 138 30 118 14 100 14 C 82 14 62 30 62 84 L 62 104 Z"),
    details=("M 21 92 L 179 92",  # top hem
             "M 52 98 L 60 90 M 52 90 L 60 98", "M 140 98 L 148 90 M 140 90 L 148 98"),  # stitched crosses
    folds=("M 60 112 C 58 150 62 200 58 240", "M 140 112 C 142 160 138 200 142 240",
           "M 24 222 C 40 230 50 236 62 242", "M 176 222 C 160 230 150 236 138 242"),
)

CUSHION = Garment(
    "cushion", "Cushion",
    outline=("M 20 20 C 70 32 130 32 180 20 C 168 70 168 130 180 180 C 130 168 70 168 20 180 "
             "C 32 130 32 70 20 20 Z",),
    details=("M 26 26 C 72 37 128 37 174 26",),  # piping seam along the top
    folds=("M 22 22 C 36 36 46 42 58 46", "M 178 22 C 164 36 154 42 142 46",
           "M 22 178 C 36 164 46 158 58 154", "M 178 178 C 164 164 154 158 142 154",
           "M 96 100 L 104 100"),  # the button dimple
)

GARMENTS: dict[str, Garment] = {g.name: g for g in (TSHIRT, DRESS, SCARF, TOTE, CUSHION)}
assert tuple(GARMENTS) == names.GARMENTS  # what `mockup --garments` is checked against
