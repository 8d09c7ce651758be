"""A run folder: one writing process at a time, and whether a stage resumes its state, starts over or refuses.

Every stage keeps its state in the run folder together with the options it was made with (a distillation
checkpoint, expert trajectories, eval.json). Re-running with the same options continues that state; other
options are refused with a message naming them, unless --force discards the state; --resume insists on one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from texdistill import distributed
from texdistill.config import CommonConfig
from texdistill.errors import CheckpointError, ConfigError, RunInUseError
from texdistill.storage import read_json, write_error, write_json

try:
    import fcntl
except ImportError:  # not POSIX: run without the lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"


class RunLock:
    """An exclusive flock on <run>/.lock, with the holder's pid in the file, held while a stage writes the run.

    The kernel drops a flock when its process dies (SIGKILL included), so a lock left by a killed run never
    blocks the next one; the pid in the file is only there to name the holder in the error.
    """

    def __init__(self, run_dir: str | Path, stage: str):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        if not distributed.is_main():
            return self  # the ranks of one torchrun job share rank 0's lock
        path = self.run_dir / LOCK_FILE
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(path, exc) from exc
        if fcntl is None:
            log.warning("no file locking on this system: make sure one process at a time writes %s", self.run_dir)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe_holder(os.pread(fd, 4096, 0))
                os.close(fd)
                raise RunInUseError(f"{self.run_dir} is being written by {holder}; wait for it to finish or stop "
                                    f"it, or use another --out") from None
        holder = {"pid": os.getpid(), "stage": self.stage, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise write_error(path, exc) from exc
        self.fd = fd
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _describe_holder(content: bytes) -> str:
    try:
        holder = json.loads(content)
        return f"texdistill {holder['stage']} (pid {holder['pid']}, since {holder['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process (pid unknown)"


def continue_existing(cfg: CommonConfig, what: str, found: bool) -> bool:
    """Whether a stage continues its existing state `what`: --force says no, --resume insists there is one."""
    if cfg.force:
        return False
    if cfg.resume and not found:
        raise CheckpointError(f"--resume: {cfg.run_dir} holds no {what} to continue; drop --resume to start a "
                              f"new run there")
    return found


def require_same_options(cfg: CommonConfig, what: str, saved: dict) -> None:
    """Refuse to continue `what` if it was made with other options than cfg (naming each of them)."""
    changes = cfg.changes_from(saved)
    if changes:
        raise ConfigError(f"{what} in {cfg.run_dir} was made with other options ({'; '.join(changes)}); "
                          f"re-run with the same options, use another --out, or add --force to start over")


def discard(paths: list[Path]) -> None:
    """Remove a stage's own stale files (named by the stage, never whole folders)."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise write_error(path, exc) from exc


def record_config(cfg: CommonConfig, stage: str) -> None:
    """Store the stage's resolved options as one section of <run>/config.json (call while holding the lock)."""
    path = cfg.run_dir / CONFIG_FILE
    sections = read_json(path) if path.exists() else {}
    if not isinstance(sections, dict):
        sections = {}
    sections[stage] = cfg.to_dict()
    write_json(path, sections)
