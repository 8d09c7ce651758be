"""The distilled set's files: the result (synthetic.safetensors) and the snapshots of its evolution.

The result holds the set's tensors (pixels, labels, soft labels), its pixel space and JSON metadata (kind,
iteration, the set's settings, η, the model, the data); a snapshot holds the set as displayed uint8 pixels.
Everything that reads a run's set (evaluation, export, mock-ups, the report) comes here, not to the loop.
"""

from __future__ import annotations

from pathlib import Path

import torch

from texdistill.data import PixelSpace
from texdistill.errors import CheckpointError
from texdistill.method.synthetic import SyntheticSet, from_state
from texdistill.method.torus import quantize
from texdistill.storage import load_tensors

RESULT = "synthetic.safetensors"
SNAPSHOTS = "snapshots"


def result_path(run_dir: str | Path) -> Path:
    """The distilled set's file in a run folder; an error naming the fix if there is none."""
    path = Path(run_dir) / RESULT
    if not path.exists():
        raise CheckpointError(f"{run_dir} has no {RESULT}; run `texdistill distill --out {run_dir}` first")
    return path


def load_result(run_dir: str | Path) -> tuple:
    """(synthetic set, metadata, pixel space) of a finished or checkpointed distillation run."""
    path = result_path(run_dir)
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "synthetic-set":
        raise CheckpointError(f"{path} is a {meta.get('kind')} file, not a distilled set; re-run `texdistill distill`")
    space = PixelSpace.from_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("space.")})
    synthetic = from_state(meta["synthetic"], {k: v for k, v in tensors.items() if not k.startswith("space.")})
    return synthetic, meta, space


def display_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The to_uint8 of snapshot sets, whose pixels are already display values 0…255."""
    return quantize(x, white=255.0)


def load_snapshots(run_dir: str | Path, like: SyntheticSet, limit: int | None = None) -> list[tuple[int, SyntheticSet]]:
    """(iteration, set in display pixels — see display_to_uint8) of a run's snapshots shaped like `like`.

    With `limit`, at most that many, evenly spaced from the first to the last.
    """
    paths = sorted((Path(run_dir) / SNAPSHOTS).glob("it_*.safetensors"))
    if limit is not None and len(paths) > limit:
        picks = torch.linspace(0, len(paths) - 1, limit).round().long().unique()
        paths = [paths[i] for i in picks]
    snapshots = []
    for path in paths:
        tensors, meta = load_tensors(path)
        if meta["synthetic"] == like.settings() and tensors["pixels"].shape == like.pixels.shape:
            snapshots.append((meta["iteration"], from_state(meta["synthetic"], {
                "pixels": tensors["pixels"].float(), "labels": tensors["labels"]})))
    return sorted(snapshots, key=lambda item: item[0])
