"""Files of a run: atomic writes, safetensors with JSON metadata (no pickle), the JSON-lines log."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from texdistill.errors import CheckpointError

METADATA_KEY = "texdistill"
SCHEMA_VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to path via a temp file in the same folder, fsync and rename: all or nothing."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | Path, write: Callable[[Any], Any]) -> None:
    """Call write(binary file) on a temp file next to `path`, then fsync and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); delete it or restore it from a backup") from exc


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Save tensors as safetensors with `metadata` (any JSON) stored in the header, atomically."""
    meta = {METADATA_KEY: json.dumps({"schema": SCHEMA_VERSION, **metadata})}
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(contiguous, metadata=meta))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a file written by save_tensors; a corrupt or foreign file raises CheckpointError."""
    path = Path(path)
    try:
        data = path.read_bytes()
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        metadata = json.loads(header.get("__metadata__", {})[METADATA_KEY])
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} does not exist") from exc
    except (SafetensorError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt or not a texdistill file ({exc.__class__.__name__}); "
                              f"delete it so it is rebuilt") from exc
    if metadata.get("schema") != SCHEMA_VERSION:
        raise CheckpointError(f"{path} has schema {metadata.get('schema')}, this texdistill reads "
                              f"{SCHEMA_VERSION}; rebuild it with this version")
    return tensors, metadata


class JsonlLog:
    """Append-only JSON-lines log; each record gets a wall-clock time and the stage that wrote it."""

    def __init__(self, path: str | Path, stage: str):
        self.path = Path(path)
        self.stage = stage
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **record: Any) -> None:
        line = json.dumps({"time": round(time.time(), 3), "stage": self.stage, **record}, default=float)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def read_jsonl(path: str | Path, stage: str | None = None) -> list[dict]:
    """Records of a JSON-lines log (optionally of one stage); a torn last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a killed process
        if stage is None or record.get("stage") == stage:
            records.append(record)
    return records


def _pil(image: torch.Tensor):
    """A uint8 (C, H, W) tensor (C = 1, 2 or 3: L, LA, RGB) as a PIL image."""
    from PIL import Image

    array = image.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def png_bytes(image: torch.Tensor, dpi: float | None = None) -> bytes:
    """A uint8 (C, H, W) tensor (C = 1, 2 or 3) encoded as PNG, with its DPI in the pHYs chunk when given."""
    buffer = io.BytesIO()
    _pil(image).save(buffer, format="PNG", **({"dpi": (dpi, dpi)} if dpi else {}))
    return buffer.getvalue()


def save_png(path: str | Path, image: torch.Tensor, dpi: float | None = None) -> None:
    """Write a uint8 (C, H, W) tensor (C = 1 or 3) as PNG, atomically."""
    atomic_write_bytes(path, png_bytes(image, dpi))
