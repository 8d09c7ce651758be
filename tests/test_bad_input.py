"""Every bad input → exit code 2, one line `texdistill: error: …` naming the problem, and not one byte of the
existing run (or data) changed. One row per case: add rows as readers and options appear."""

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import save_image, write_idx
from tinyrun import distill_cli, evaluate_cli, experts_cli, files_of, with_option

from texdistill.cli import main
from texdistill.storage import load_tensors, save_tensors

pytestmark = pytest.mark.usefixtures("single_thread")

Paths = tuple[Path, Path]  # (a copy of the finished tiny run, an empty scratch folder for data)


@dataclass
class Case:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (run, scratch) → command line
    message: str  # must appear in the error line
    setup: Callable[[Path, Path], None] = lambda run, scratch: None


def idx_dataset(folder: Path, side: int = 8, train: int = 20, labels=None, images_bytes: bytes | None = None) -> None:
    """Fashion-MNIST-layout idx files in `folder` (10 classes unless `labels` says otherwise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("t10k", 10)):
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, side, side)), False)
        split_labels = np.arange(n) % 10 if labels is None else labels(n)
        write_idx(folder / f"{split}-labels-idx1-ubyte", split_labels, False)
    if images_bytes is not None:
        (folder / "train-images-idx3-ubyte").write_bytes(images_bytes)


def png_files(folder: Path, count: int, broken: bool = False) -> None:
    """`count` small PNGs in `folder` (or files named .png that are not images)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        if broken:
            (folder / f"{i}.png").write_bytes(b"not a png")
        else:
            save_image(folder / f"{i}.png", np.full((12, 12, 3), 40 * i, np.uint8))


def folder(run: Path, scratch: Path) -> list[str]:
    """Train experts on the class folders in scratch/fm."""
    return [*with_option(with_option(experts_cli(), "--data", "folder"), "--data-dir", str(scratch / "fm")), "--out",
            str(run)]


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def fashion(run: Path, scratch: Path) -> list[str]:
    """Train experts on the idx files in scratch/fm."""
    return [*with_option(experts_cli(), "--data-dir", str(scratch / "fm")), "--out", str(run)]


def drop_tensor(path: Path, name: str) -> None:
    tensors, meta = load_tensors(path)
    del tensors[name]
    save_tensors(path, tensors, {k: v for k, v in meta.items() if k != "schema"})


def distill(run: Path, *extra: str) -> list[str]:
    return [*distill_cli(), "--out", str(run), *extra]


CASES = [
    # data
    Case("missing data dir", lambda r, s: fashion(r, s), "does not exist; pass --data-dir"),
    Case("empty data dir", lambda r, s: fashion(r, s), "has no train-images-idx3-ubyte[.gz]",
         lambda r, s: (s / "fm").mkdir()),
    Case("one class", lambda r, s: fashion(r, s), "classes without training images: trouser",
         lambda r, s: idx_dataset(s / "fm", labels=lambda n: np.zeros(n))),
    Case("wrong layout: not idx files", lambda r, s: fashion(r, s), "is not an unsigned-byte idx file",
         lambda r, s: idx_dataset(s / "fm", images_bytes=b"\x89PNG\r\n\x1a\n" + bytes(100))),
    Case("wrong layout: truncated idx", lambda r, s: fashion(r, s), "is truncated",
         lambda r, s: (idx_dataset(s / "fm"), truncate(s / "fm" / "t10k-images-idx3-ubyte"))),
    Case("wrong layout: images and labels disagree", lambda r, s: fashion(r, s), "20 train images but 30 labels",
         lambda r, s: (idx_dataset(s / "fm"), write_idx(s / "fm" / "train-labels-idx1-ubyte", np.zeros(30), False))),
    Case("folder: images without class sub-folders", lambda r, s: folder(r, s), "has no class sub-folders",
         lambda r, s: png_files(s / "fm", 3)),
    Case("folder: one class", lambda r, s: folder(r, s), "needs at least 2 classes, found 1",
         lambda r, s: png_files(s / "fm" / "cats", 3)),
    Case("folder: an empty class folder", lambda r, s: folder(r, s), "holds no images",
         lambda r, s: (png_files(s / "fm" / "cats", 3), (s / "fm" / "dogs").mkdir())),
    Case("folder: a class of unreadable images", lambda r, s: folder(r, s), "have no readable training images",
         lambda r, s: (png_files(s / "fm" / "cats", 3), png_files(s / "fm" / "dogs", 3, broken=True))),
    Case("folder: --data-dir is a file", lambda r, s: folder(r, s), "is not a folder",
         lambda r, s: (s / "fm").write_text("not a folder")),
    Case("cifar10: no batches", lambda r, s: [*with_option(experts_cli(), "--data", "cifar10"), "--data-dir", str(s),
                                             "--out", str(r)], "no cifar10 batches in"),
    Case("a class that is not there", lambda r, s: [*experts_cli(), "--classes", "sandal,zebra", "--out", str(r)],
         "has no class 'zebra'"),
    Case("resolution below the minimum", lambda r, s: [*experts_cli(), "--res", "2", "--out", str(r)],
         "--res must be ≥ 4"),
    Case("network deeper than the images", lambda r, s: [*experts_cli(), "--depth", "4", "--out", str(r)],
         "depth 4 pools a 8×8 image to nothing; use --depth 3 or less"),
    Case("canvas smaller than the crop", lambda r, s: distill(r, "--texture", "--canvas-size", "0.5"),
         "--canvas-size must be ≥ 1"),
    # experts that do not fit
    Case("experts of another model", lambda r, s: distill(r, "--width", "8"),
         "are ConvNets of width 4, depth 1, not width 8, depth 1; pass --width 4 --depth 1"),
    Case("experts of another resolution", lambda r, s: distill(r, "--res", "16"),
         "were trained on fashion-mnist (1×8×8, 10 classes), not fashion-mnist (1×16×16, 10 classes); pass "
         "matching --data/--res/--val-fraction or other --experts-dir"),
    Case("experts of another dataset", lambda r, s: distill(r, "--data", "fashion-demo", "--res", "8"),
         "were trained on fashion-mnist (1×8×8, 10 classes), not fashion-demo (1×8×8, 10 classes)"),
    Case("no experts", lambda r, s: distill(r, "--experts-dir", str(s)),
         "/scratch; run `texdistill experts` first"),
    # damaged files
    Case("truncated expert file", lambda r, s: distill(r), "expert_001.safetensors is damaged (truncated?)",
         lambda r, s: truncate(r / "experts" / "expert_001.safetensors")),
    Case("truncated checkpoint", lambda r, s: distill(r), "checkpoint.safetensors is damaged (truncated?)",
         lambda r, s: truncate(r / "checkpoint.safetensors")),
    Case("checkpoint of another kind", lambda r, s: distill(r), "is a snapshot file, not a distillation checkpoint",
         lambda r, s: shutil.copy(r / "snapshots" / "it_000002.safetensors", r / "checkpoint.safetensors")),
    Case("checkpoint missing a tensor", lambda r, s: distill(r), "does not fit this run (missing generator)",
         lambda r, s: drop_tensor(r / "checkpoint.safetensors", "generator")),
    Case("a distilled set without its checkpoint", lambda r, s: distill(r), "holds a distilled set (synthetic."
         "safetensors) but no checkpoint.safetensors to continue it; use another --out, or add --force",
         lambda r, s: (r / "checkpoint.safetensors").unlink()),
    Case("truncated synthetic set", lambda r, s: [*evaluate_cli(), "--out", str(r)], "synthetic.safetensors is damaged",
         lambda r, s: truncate(r / "synthetic.safetensors", 0.99)),
    Case("no synthetic set", lambda r, s: [*evaluate_cli(), "--out", str(s)], "has no synthetic.safetensors; run "
                                                                        "`texdistill distill"),
    Case("damaged eval.json", lambda r, s: [*evaluate_cli(), "--out", str(r)], "eval.json is not valid JSON",
         lambda r, s: (r / "eval.json").write_text('{"config": {')),
    Case("evaluation on other data", lambda r, s: [*evaluate_cli(), "--res", "16", "--out", str(r)],
         "was distilled from fashion-mnist (1×8×8, 10 classes), not fashion-mnist (1×16×16, 10 classes)"),
    # a run made with other options
    Case("experts with other options", lambda r, s: [*with_option(experts_cli(), "--epochs", "3"), "--out", str(r)],
         "/run was made with other options (--epochs 2 → 3); re-run with the same"),
    Case("distillation with another option", lambda r, s: with_option(distill(r), "--syn-steps", "3"),
         "/run was made with other options (--syn-steps 2 → 3)"),
    Case("distillation with other options", lambda r, s: distill(r, "--texture", "--seed", "1"),
         "(--seed 0 → 1; --texture False → True); re-run with the same options, use another --out, or add --force"),
    Case("evaluation with other options", lambda r, s: [*evaluate_cli(), "--eval-epochs", "2", "--out", str(r)],
         "(--eval-epochs 1 → 2)"),
    Case("--resume without a run folder", lambda r, s: distill(s / "new", "--resume"),
         "--resume: there is no run folder"),
    Case("--resume without a checkpoint", lambda r, s: distill(s, "--resume", "--experts-dir", str(r / "experts")),
         "holds no distillation checkpoint to continue; drop --resume"),
    Case("--resume and --force", lambda r, s: distill(r, "--resume", "--force"), "pass only one of them"),
    # out-of-range options
    Case("negative steps", lambda r, s: with_option(distill(r), "--syn-steps", "-3"),
         "--syn-steps must be ≥ 1, got -3"),
    Case("ipc 0", lambda r, s: distill(r, "--ipc", "0"), "--ipc must be ≥ 1, got 0"),
    Case("ipc in texture mode", lambda r, s: distill(r, "--texture", "--ipc", "4"),
         "--ipc 4 applies to image mode; texture mode learns one canvas per class"),
    Case("texture init in image mode", lambda r, s: distill(r, "--init", "real-tiled"),
         "--init real-tiled applies to texture mode (crops of one canvas per class): add --texture"),
    Case("iterations 0", lambda r, s: with_option(distill(r), "--iterations", "0"), "--iterations must be ≥ 1"),
    Case("negative pixel lr", lambda r, s: distill(r, "--lr-img", "-1"), "--lr-img must be > 0"),
    Case("no experts to train", lambda r, s: [*with_option(experts_cli(), "--num-experts", "0"), "--out", str(r)],
         "--num-experts must be ≥ 1"),
    Case("no evaluation models", lambda r, s: [*with_option(evaluate_cli(), "--num-models", "0"), "--out", str(r)],
         "--num-models must be ≥ 1"),
    Case("start epochs out of range", lambda r, s: distill(r, "--min-start-epoch", "2"),
         "need 0 ≤ --min-start-epoch < --max-start-epoch"),
    Case("unknown preset", lambda r, s: [*experts_cli(), "--preset", "nope", "--out", str(r)], "unknown preset 'nope'"),
    Case("unknown dataset", lambda r, s: [*experts_cli(), "--data", "imagenet-please", "--out", str(r)],
         "unknown dataset 'imagenet-please'"),
    Case("missing config file", lambda r, s: [*experts_cli(), "--config", str(s / "nope.json"), "--out", str(r)],
         "cannot read config file"),
    Case("GPU requested where none exists", lambda r, s: distill(r, "--device", "cuda"),
         "--device cuda was requested but no CUDA GPU is visible; use --device cpu"),
]


def disk_full(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_code_2_and_overwrites_nothing(case, tmp_path, tiny_run, capsys):
    if case.name.startswith("GPU") and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    shutil.copytree(tiny_run, run)
    scratch.mkdir()
    case.setup(run, scratch)
    assert_refused(case.argv(run, scratch), case.message, tmp_path, capsys)


def test_disk_full_while_saving_is_one_line_and_keeps_every_file(tmp_path, tiny_run, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    monkeypatch.setattr(os, "fsync", disk_full)  # as a full disk reports it: when the data must reach it
    assert_refused(with_option(distill(run), "--iterations", "6"), "No space left on device; free some disk space",
                   tmp_path, capsys)


def test_disk_full_mid_run_keeps_the_last_checkpoint_and_the_same_command_resumes(tmp_path, tiny_experts, capsys,
                                                                                  monkeypatch):
    reference, run = tmp_path / "reference", tmp_path / "run"
    for folder in (reference, run):
        shutil.copytree(tiny_experts, folder)
    argv = with_option(distill_cli(), "--iterations", "6")  # checkpoints at iterations 2, 4 and 6
    assert main([*argv, "--out", str(reference)]) == 0

    real_fsync, full = os.fsync, []

    def fsync(fd: int) -> None:  # the disk fills up after the checkpoint of iteration 2
        if full:
            disk_full(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    from texdistill.stages.outputs import DistillOutputs

    real_save = DistillOutputs.save_result

    def save_result(self, state) -> None:  # written after each checkpoint
        real_save(self, state)
        full.append(state.iteration)

    monkeypatch.setattr(DistillOutputs, "save_result", save_result)
    assert main([*argv, "--out", str(run)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("texdistill: error:")]
    assert len(errors) == 1 and "cannot write" in errors[0] and "it_000004.safetensors" in errors[0]  # a snapshot
    assert "No space left on device; free some disk space" in errors[0] and full == [2]
    _, meta = load_tensors(run / "checkpoint.safetensors")
    assert meta["iteration"] == 2 and not list(run.glob(".*.tmp"))  # the last good checkpoint, no half files
    monkeypatch.undo()  # space freed: the same command continues from iteration 2 …
    assert main([*argv, "--out", str(run)]) == 0
    ours, _ = load_tensors(run / "checkpoint.safetensors")
    theirs, _ = load_tensors(reference / "checkpoint.safetensors")  # … to exactly the uninterrupted run
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def assert_refused(argv: list[str], message: str, root: Path, capsys) -> None:
    before, paths = files_of(root), sorted(root.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("texdistill: error:")]
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert message in errors[0], errors[0]
    assert files_of(root) == before and sorted(root.rglob("*")) == paths  # nothing written, nothing created


def test_debug_shows_the_traceback(tmp_path):
    from texdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="--ipc must be ≥ 1"):
        main([*distill_cli(), "--ipc", "0", "--out", str(tmp_path), "--debug"])
