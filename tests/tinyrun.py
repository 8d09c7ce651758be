"""The smallest real pipeline the robustness tests run: 8×8 Fashion-MNIST idx files (1000 train / 200 test
images taken from the embedded demo set), width-4 ConvNets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from datafiles import write_idx

from texdistill.data import load_dataset
from texdistill.storage import read_jsonl

SIDE = 8
_data_dir: list[Path] = []  # set once per session by make_tiny_data (conftest's tiny_data fixture)


def make_tiny_data(folder: Path) -> Path:
    """The tiny dataset as Fashion-MNIST idx files in `folder`: every 10th demo image, resized to 8×8."""
    demo = load_dataset("fashion-demo", res=SIDE)
    folder.mkdir(parents=True, exist_ok=True)
    for split, images, labels in (("train", demo.train_images, demo.train_labels),
                                  ("t10k", demo.test_images, demo.test_labels)):
        write_idx(folder / f"{split}-images-idx3-ubyte", images[::10, 0].numpy())
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels[::10].numpy())
    _data_dir[:] = [folder]
    return folder


def common() -> list[str]:
    return ["--data", "fashion-mnist", "--data-dir", str(_data_dir[0]), "--res", str(SIDE), "--width", "4"]


def experts_cli() -> list[str]:
    return ["experts", *common(), "--epochs", "2", "--num-experts", "2"]


def distill_cli() -> list[str]:
    return ["distill", *common(), "--syn-steps", "2", "--expert-epochs", "1", "--max-start-epoch", "2",
            "--iterations", "4", "--ckpt-every", "2", "--log-every", "1", "--snapshot-every", "2"]


def evaluate_cli() -> list[str]:
    return ["evaluate", *common(), "--num-models", "1", "--eval-epochs", "1", "--judge-epochs", "1"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread: width-4 nets run several times faster so, and start_cli's processes match bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """argv with `flag` set to `value` (replaced if present, appended otherwise)."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
        return argv
    return [*argv, flag, value]


def files_of(*roots: Path) -> dict[str, bytes]:
    """path → bytes of every file under the roots (what 'nothing was overwritten' compares)."""
    return {str(p): p.read_bytes() for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()}


def start_cli(argv: list[str], stderr: Path) -> subprocess.Popen:
    """`texdistill argv` in a fresh interpreter on one thread (as one_thread(), so CPU results are bit-identical)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(stderr, "w") as err:  # a file, not a pipe: tqdm's output must never block the process
        return subprocess.Popen([sys.executable, "-m", "texdistill", *argv], stdout=subprocess.DEVNULL,
                                stderr=err, env=env)


def wait_for_log(process: subprocess.Popen, log: Path, ready: Callable[[list[dict]], bool],
                 timeout: float = 240.0) -> list[dict]:
    """Poll log.jsonl until ready(records) holds; fails if the process ends or time runs out first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        records = read_jsonl(log)
        if ready(records):
            return records
        if process.poll() is not None:
            raise AssertionError(f"the process ended first (rc {process.returncode}); see its stderr file")
        time.sleep(0.02)
    process.kill()
    raise AssertionError("timed out waiting for the log")
