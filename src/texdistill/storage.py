"""Files of a run: atomic writes, safetensors with JSON metadata (no pickle), the JSON-lines log.

Every file except the log is written to a temp file in its folder, fsynced and renamed over the old one, so a
reader (or a resumed run) sees the old file or the new one, never half of one. A failed write (disk full, no
permission) raises StorageError, removes the temp file and leaves the old file as it was.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from texdistill import distributed
from texdistill.errors import CheckpointError, StorageError

METADATA_KEY = "texdistill"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (os has no getter) and put it back
SCHEMA_VERSION = 1


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to path via a temp file in the same folder, fsync and rename: all or nothing."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | Path, write: Callable[[Any], Any]) -> None:
    """Call write(binary file) on a temp file next to `path`, then fsync and rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    # make the rename itself durable
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_error(path: Path, exc: OSError) -> StorageError:
    """The one-line error for a failed write of `path`, naming the fix."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some disk space (or use another --out) and re-run the same command"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable or use another --out"
    else:
        fix = "check the disk and re-run the same command"
    kept = " (its previous version is intact)" if path.exists() else ""
    return StorageError(f"cannot write {path}{kept}: {reason}; {fix}")


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc.__class__.__name__}); delete it or restore it "
                              f"from a backup") from exc


def save_npz(path: str | Path, arrays: dict[str, Any]) -> None:
    """Save numpy arrays as a compressed .npz (no object arrays: it loads with allow_pickle=False), atomically."""
    import numpy as np

    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Save tensors as safetensors with `metadata` (any JSON) stored in the header, atomically."""
    meta = {METADATA_KEY: json.dumps({"schema": SCHEMA_VERSION, **metadata})}
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(contiguous, metadata=meta))


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a file written by save_tensors; a corrupt or foreign file raises CheckpointError."""
    path = Path(path)
    with _reading(path):
        data = path.read_bytes()
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        metadata = _texdistill_metadata(path, header.get("__metadata__"))
    return tensors, metadata


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a file written by save_tensors, reading only its header (the size is checked too)."""
    path = Path(path)
    with _reading(path):
        with safe_open(str(path), framework="pt") as f:  # validates that the header covers the whole file
            return _texdistill_metadata(path, f.metadata())


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turns every way a stored file can be unreadable into one CheckpointError naming the file."""
    try:
        yield
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} does not exist") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is damaged (truncated?) or not a texdistill file ({exc.__class__.__name__}); "
                              f"restore it, or rebuild it by re-running the stage that wrote it with --force") from exc


def _texdistill_metadata(path: Path, header_metadata: dict | None) -> dict[str, Any]:
    metadata = json.loads((header_metadata or {})[METADATA_KEY])  # KeyError/ValueError: not ours
    if not isinstance(metadata, dict) or metadata.get("schema") != SCHEMA_VERSION:
        schema = metadata.get("schema") if isinstance(metadata, dict) else None
        raise CheckpointError(f"{path} has schema {schema}, this texdistill reads {SCHEMA_VERSION}; "
                              f"rebuild it with this version")
    return metadata


class JsonlLog:
    """Append-only JSON-lines log; each record gets a wall-clock time and the stage that wrote it.

    Two event records tell readers that a stage went back: {"event": "start"} (it started over: its earlier
    records are void) and {"event": "resume", "it": N} (it continued a checkpoint of iteration N: its
    earlier records with it > N are void, they are written again). read_jsonl applies both.

    Under torchrun only rank 0 repairs a torn tail; ranks that log their own work (experts) append whole lines
    in one write each (O_APPEND), marked with their rank.
    """

    def __init__(self, path: str | Path, stage: str):
        self.path = Path(path)
        self.stage = stage
        self._checked_tail = not distributed.is_main()  # only rank 0 repairs: it never cuts another rank's line

    def write(self, **record: Any) -> None:
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        if distributed.world_size() > 1:
            record["rank"] = distributed.rank()
        line = json.dumps({"time": round(time.time(), 3), "stage": self.stage, **record}, default=float,
                          allow_nan=False)  # NaN/inf are logged as null: strict JSON for every reader
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._checked_tail:
                drop_torn_tail(self.path)
                self._checked_tail = True
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError as exc:
            raise write_error(self.path, exc) from exc


def drop_torn_tail(path: Path) -> None:
    """Cut a last line without its newline (a process killed mid-write) so the next record starts a line."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
        f.truncate(size - len(tail) + tail.rfind(b"\n") + 1)


def read_jsonl(path: str | Path, stage: str | None = None) -> list[dict]:
    """Records of a JSON-lines log (optionally of one stage), without those a restart or resume voided.

    A torn line (a process killed mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        event, owner = record.get("event"), record.get("stage")
        if event == "start":
            records = [r for r in records if r.get("stage") != owner]
        elif event == "resume":
            records = [r for r in records if r.get("stage") != owner or r.get("it", 0) <= record.get("it", 0)]
        if stage is None or owner == stage:
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


def gif_bytes(frames: list[torch.Tensor], frame_ms: int = 200, last_ms: int = 1500) -> bytes:
    """uint8 frames (C, H, W) of one size as a looping animated GIF; the last frame is held longer."""
    images = [_pil(frame) for frame in frames]
    durations = [frame_ms] * (len(images) - 1) + [last_ms]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


def save_png(path: str | Path, image: torch.Tensor, dpi: float | None = None) -> None:
    """Write a uint8 (C, H, W) tensor (C = 1 or 3) as PNG, atomically."""
    atomic_write_bytes(path, png_bytes(image, dpi))
