"""The look of each texture start (--init real | quilt | real-tiled) on the embedded Fashion-MNIST: the strongest
straight line anywhere and at the crop-side multiples (robust z; max and median over classes), and the speckle
of random crops (÷ real images), for seeds 0-2.

    python benchmarks/start_looks.py
"""

from __future__ import annotations

import torch

from texdistill.data import PixelSpace, load_dataset
from texdistill.method.evaluate import real_sample
from texdistill.method.synthetic import build_synthetic
from texdistill.method.torus import edge_metrics, high_frequency_share


def main() -> None:
    dataset = load_dataset("fashion-demo")
    space = PixelSpace.fit(dataset)
    real = high_frequency_share(real_sample(dataset))
    print("| start | seed | edge z max / median | tile-edge z max / median | speckle |\n|---|---|---|---|---|")
    for init in ("real", "quilt", "real-tiled"):
        for seed in range(3):
            canvases = build_synthetic(True, init, dataset, space, torch.Generator().manual_seed(seed))
            edges = [edge_metrics(c, dataset.image_size) for c in canvases.decoded(space)]
            anywhere, tiles = (sorted(e[k] for e in edges) for k in ("edge_z", "tile_edge_z"))
            crops, _ = canvases.displayed_samples(space, 64, 0)
            print(f"| {init} | {seed} | {anywhere[-1]:.1f} / {anywhere[len(edges) // 2]:.1f} | "
                  f"{tiles[-1]:.1f} / {tiles[len(edges) // 2]:.1f} | {high_frequency_share(crops) / real:.2f} |")


if __name__ == "__main__":
    main()
