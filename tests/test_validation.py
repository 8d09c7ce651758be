"""The validation split: fixed, per class, carved from the training images only (by picture for image files),
what `evaluate --split val` tests on, and a key of the decoded cache."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from datafiles import save_image
from tinyrun import evaluate_cli, one_thread, with_option

from texdistill.cli import main
from texdistill.config import EvalConfig, ExpertsConfig
from texdistill.data import find_dataset, load_dataset
from texdistill.data.cache import cache_path
from texdistill.data.images import Reading, read_image
from texdistill.data.source import DataRequest
from texdistill.data.validation import val_count, val_mask
from texdistill.method import evaluate
from texdistill.method.experts import data_mismatch


def rows(images: torch.Tensor) -> list[bytes]:
    return [bytes(image.numpy().tobytes()) for image in images]


def test_val_count_keeps_a_training_image_per_class():
    assert [val_count(n, 0.1) for n in (0, 1, 2, 3, 10, 15, 1000)] == [0, 0, 1, 1, 1, 2, 100]
    assert val_count(5, 0.0) == 0 and val_count(4, 0.9) == 3


def test_array_datasets_carve_val_per_class_from_train_only_and_always_the_same():
    full = load_dataset("fashion-demo")
    data = load_dataset("fashion-demo", val_fraction=0.1)
    assert data.class_counts("val") == [100] * 10 and data.class_counts("train") == [900] * 10
    assert torch.equal(data.test_images, full.test_images)  # the test split is untouched
    mask = torch.from_numpy(val_mask(full.train_labels.numpy(), full.class_names, 0.1))
    assert torch.equal(data.val_images, full.train_images[mask]) and torch.equal(data.train_images, full.train_images[~mask])
    assert torch.equal(data.val_labels, full.train_labels[mask])
    again = load_dataset("fashion-demo", val_fraction=0.1)
    assert torch.equal(again.val_images, data.val_images)  # deterministic
    assert not set(rows(data.val_images)) & set(rows(data.test_images))
    # the same images whatever classes are kept, in whatever order (each class is drawn by its name)
    two = load_dataset("fashion-demo", classes=("coat", "trouser"), val_fraction=0.1)
    assert torch.equal(two.val_images[two.val_labels == 0], data.images_of_class(4, "val"))
    assert torch.equal(two.val_images[two.val_labels == 1], data.images_of_class(1, "val"))
    # and whatever --seed: the seed is no option of the data
    assert ExpertsConfig(out="x", seed=0).dataset_options() == ExpertsConfig(out="x", seed=7).dataset_options()
    assert find_dataset("fashion-demo", val_fraction=0.1).counts["val"] == [100] * 10


def _picture_folder(root, per_class=10, size=40):
    rng = np.random.default_rng(0)
    for name in ("apple", "pear", "plum"):
        for i in range(per_class):
            save_image(root / name / f"{name} {i}.png", rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8))
    return root


def _picture_of(sample_rows: list[bytes], pictures: dict[bytes, str]) -> set[str]:
    return {pictures[r] for r in sample_rows}


@pytest.mark.parametrize("patches", [0, 3])
def test_folders_carve_val_by_picture_before_patches(tmp_path, patches):
    root = _picture_folder(tmp_path / "fruit")
    options = {"res": 16, "holdout": 0.2, "patches": patches}
    full = load_dataset("folder", str(root), **options)
    data = load_dataset("folder", str(root), **options, val_fraction=0.25)
    per = max(1, patches)
    # 10 pictures per class: 2 held out as test, 2 of the other 8 as validation (round(0.25 · 8))
    assert data.class_counts("test") == full.class_counts("test") == [2 * per] * 3
    assert data.class_counts("val") == [2 * per] * 3 and data.class_counts("train") == [6 * per] * 3
    assert find_dataset("folder", str(root), **options, val_fraction=0.25).counts["val"] == [2 * per] * 3
    assert torch.equal(data.test_images, full.test_images)
    # every sample belongs to one picture, and each picture's samples lie on one side only
    reading = Reading(16, patches)
    pictures = {r: path.name for path in root.rglob("*.png") for r in rows(torch.from_numpy(
        read_image(path, reading).copy()).permute(0, 3, 1, 2).contiguous())}
    train, val, test = (_picture_of(rows(images), pictures) for images in
                        (data.train_images, data.val_images, data.test_images))
    assert len(val) == 6 and not (train & val) and not (train & test) and not (val & test)
    assert len(data.val_images) == len(val) * per
    assert load_dataset("folder", str(root), **options, val_fraction=0.25).val_images.equal(data.val_images)
    # adding pictures does not reshuffle the others: those that were validation pictures stay it, or move to test
    rng = np.random.default_rng(1)
    for i in range(3):
        save_image(root / "apple" / f"new {i}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    grown = load_dataset("folder", str(root), **options, val_fraction=0.25)
    grown_val = _picture_of([r for r in rows(grown.val_images) if r in pictures], pictures)
    assert {p for p in val if not p.startswith("apple")} <= grown_val


def test_the_cache_is_keyed_by_the_validation_split(tmp_path):
    root = _picture_folder(tmp_path / "fruit", per_class=6)
    keys = {}
    for fraction in (0.0, 0.2, 0.4):
        request = DataRequest("folder", str(root), 16, val_fraction=fraction)
        keys[fraction] = cache_path(find_dataset("folder", str(root), 16, val_fraction=fraction), request, tmp_path)
    assert len(set(keys.values())) == 3
    old = DataRequest("folder", str(root), 16)  # the key caches had before there was a validation split
    assert keys[0.0] == cache_path(find_dataset("folder", str(root), 16), old, tmp_path)
    cached = load_dataset("folder", str(root), 16, val_fraction=0.2, cache_dir=tmp_path / "c")
    fresh = load_dataset("folder", str(root), 16, val_fraction=0.2)
    assert torch.equal(cached.val_images, fresh.val_images) and torch.equal(cached.train_images, fresh.train_images)
    again = load_dataset("folder", str(root), 16, val_fraction=0.2, cache_dir=tmp_path / "c")  # memory-mapped
    assert torch.equal(again.val_labels, fresh.val_labels) and len(again.val_images) == 3  # 1 of 5 per class
    without = load_dataset("folder", str(root), 16, cache_dir=tmp_path / "c")
    assert len(without.val_images) == 0 and len(without.train_images) == len(fresh.train_images) + 3
    assert len(list((tmp_path / "c").iterdir())) == 2


def test_runs_made_before_the_split_resume_only_without_it():
    saved = {k: v for k, v in ExpertsConfig(out="x").to_dict().items() if k != "val_fraction"}
    assert ExpertsConfig(out="x").changes_from(saved) == ["--val-fraction 0.0 → 0.1"]
    assert ExpertsConfig(out="x", val_fraction=0).changes_from(saved) == []
    found = find_dataset("fashion-demo", val_fraction=0.1)
    meta = {"dataset": "fashion-demo", "class_names": found.class_names,
            "model": {"channels": 1, "num_classes": 10, "height": 28, "width_px": 28}}
    assert "--val-fraction 0), not" in data_mismatch(found, meta) and "0.1)" in data_mismatch(found, meta)
    assert data_mismatch(found, {**meta, "val_fraction": 0.1}) is None
    assert data_mismatch(found, {**meta, "config": {"val_fraction": 0.1}}) is None
    assert data_mismatch(find_dataset("fashion-demo"), meta) is None
    assert EvalConfig(out="x").split == "test"


def test_evaluate_split_val_tests_on_the_validation_images(tiny_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert json.loads((run / "eval.json").read_text())["split"] == "test"
    seen = []
    real = evaluate.top1_accuracy

    def recording(model, images, labels, space, device):
        seen.append(hashlib.sha256(images.numpy().tobytes()).hexdigest())
        return real(model, images, labels, space, device)

    monkeypatch.setattr(evaluate, "top1_accuracy", recording)
    argv = [*with_option(evaluate_cli(), "--judges", "none"), "--out", str(run), "--split", "val", "--force"]
    with one_thread():
        assert main(argv) == 0
    results = json.loads((run / "eval.json").read_text())
    data = load_dataset("fashion-mnist", data_dir=argv[argv.index("--data-dir") + 1], res=8, val_fraction=0.1)
    assert results["split"] == "val" and results["split_images"] == len(data.val_images) == 100
    assert seen and set(seen) == {hashlib.sha256(data.val_images.numpy().tobytes()).hexdigest()}
    # a set distilled with another validation split is refused: its training images may include these
    assert main([*argv, "--val-fraction", "0.2"]) == 2
