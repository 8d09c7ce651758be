import os

import numpy as np
import pytest
import torch
from datafiles import save_image

import texdistill.data.cache as cache_module
import texdistill.data.images as images_module
from texdistill.data import load_dataset


@pytest.fixture
def photo_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("apples", "pears"):
        for i in range(4):
            save_image(tmp_path / "photos" / cls / f"{i}.png", rng.integers(0, 256, (20, 16, 3), dtype=np.uint8))
    return tmp_path / "photos"


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts image decodes; set .broken to make every decode fail."""
    calls = {"n": 0, "broken": False}
    real = images_module.read_image

    def counting(path, reading):
        if calls["broken"]:
            raise AssertionError("decoded although the cache is valid")
        calls["n"] += 1
        return real(path, reading)

    monkeypatch.setattr(images_module, "read_image", counting)
    return calls


def cache_folders(cache):
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


def test_cache_is_reused_memory_mapped_and_pickle_free(tmp_path, photo_folder, decode_calls):
    cache = tmp_path / "cache"
    first = load_dataset("folder", str(photo_folder), res=8, holdout=0.25, cache_dir=cache)
    assert decode_calls["n"] == 8
    (folder,) = cache_folders(cache)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        array = np.load(cache / folder / f"{name}.npy", allow_pickle=False)  # plain .npy, no pickle inside
        assert array.dtype in (np.uint8, np.int64)
    decode_calls["broken"] = True
    second = load_dataset("folder", str(photo_folder), res=8, holdout=0.25, cache_dir=cache)
    for a, b in ((first.train_images, second.train_images), (first.test_labels, second.test_labels)):
        assert torch.equal(a, b)
    assert second.class_names == first.class_names and second.layout == first.layout



def test_cache_is_memory_mapped(tmp_path, photo_folder, monkeypatch):
    cache = tmp_path / "cache"
    load_dataset("folder", str(photo_folder), res=8, cache_dir=cache)
    modes = []
    real_load = np.load

    def spy(*args, **kwargs):
        modes.append(kwargs.get("mmap_mode"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(cache_module.np, "load", spy)
    data = load_dataset("folder", str(photo_folder), res=8, cache_dir=cache)
    assert modes == ["c"] * 4  # copy-on-write maps: pages are read when used, the files never change
    data.train_images[0].zero_()  # writable in memory (torch needs that) …
    again = load_dataset("folder", str(photo_folder), res=8, cache_dir=cache)
    assert torch.count_nonzero(again.train_images[0]) > 0  # … without touching the cache


def test_cache_is_rebuilt_when_files_change(tmp_path, photo_folder, decode_calls):
    cache = tmp_path / "cache"
    load_dataset("folder", str(photo_folder), res=8, holdout=0, cache_dir=cache)
    assert decode_calls["n"] == 8
    changed = photo_folder / "apples" / "0.png"
    save_image(changed, np.zeros((20, 16, 3), np.uint8))
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse file-system clocks
    data = load_dataset("folder", str(photo_folder), res=8, holdout=0, cache_dir=cache)
    assert decode_calls["n"] == 16  # rebuilt
    assert len(cache_folders(cache)) == 1  # in place: no stale copy left behind
    assert any(torch.count_nonzero(img) == 0 for img in data.images_of_class(0))
    save_image(photo_folder / "pears" / "new.png", np.zeros((20, 16, 3), np.uint8))
    data = load_dataset("folder", str(photo_folder), res=8, holdout=0, cache_dir=cache)
    assert decode_calls["n"] == 25 and data.class_counts() == [4, 5]


def test_cache_is_keyed_by_resolution_and_classes(tmp_path, photo_folder, decode_calls):
    cache = tmp_path / "cache"
    load_dataset("folder", str(photo_folder), res=8, cache_dir=cache)
    load_dataset("folder", str(photo_folder), res=12, cache_dir=cache)
    pears = load_dataset("folder", str(photo_folder), res=8, classes=("pears", "apples"), cache_dir=cache)
    assert len(cache_folders(cache)) == 3 and pears.class_names == ["pears", "apples"]
    decode_calls["broken"] = True
    assert load_dataset("folder", str(photo_folder), res=12, cache_dir=cache).image_size == (12, 12)


def test_a_damaged_cache_is_rebuilt(tmp_path, photo_folder, decode_calls):
    cache = tmp_path / "cache"
    load_dataset("folder", str(photo_folder), res=8, cache_dir=cache)
    (folder,) = cache_folders(cache)
    (cache / folder / "train_images.npy").write_bytes(b"garbage")
    data = load_dataset("folder", str(photo_folder), res=8, cache_dir=cache)
    assert decode_calls["n"] == 16 and data.train_images.shape[1:] == (3, 8, 8)
