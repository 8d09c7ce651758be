"""Build the embedded demo subset of Fashion-MNIST (class-balanced) from Debian's idx files.

    apt-get install dataset-fashion-mnist
    python scripts/build_demo_data.py  [--train-per-class 1000 --test-per-class 200 --seed 0]

Writes src/texdistill/data/fashion_mnist_demo.npz (uint8 arrays, no pickle).
"""

import argparse
from pathlib import Path

import numpy as np

from texdistill.data.fashion_mnist import DEBIAN_DIR, DEMO_FILE, IDX_FILES, _find_idx, read_idx
from texdistill.storage import save_npz


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `per_class` random samples of every class, sorted by class then original index."""
    chosen = [np.sort(rng.choice(np.flatnonzero(labels == c), per_class, replace=False))
              for c in np.unique(labels)]
    return np.concatenate(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=DEBIAN_DIR, help="folder with the Fashion-MNIST idx(.gz) files")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "src/texdistill/data" / DEMO_FILE))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    arrays = {}
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        images_stem, labels_stem = IDX_FILES[split]
        images = read_idx(_find_idx(Path(args.source), images_stem))
        labels = read_idx(_find_idx(Path(args.source), labels_stem))
        keep = balanced_subset(labels, per_class, rng)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[keep], labels[keep]
    save_npz(args.out, arrays)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB):",
          {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
