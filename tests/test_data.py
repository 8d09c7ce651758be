import numpy as np
import pytest
import torch
from datafiles import write_idx

from texdistill.data import PixelSpace, load_dataset
from texdistill.data.dataset import resize_square
from texdistill.data.fashion_mnist import CLASS_NAMES, read_idx
from texdistill.errors import DataError


def test_demo_data_loads_offline_and_is_balanced(demo_data):
    assert demo_data.class_names == CLASS_NAMES
    assert demo_data.train_images.shape == (10000, 1, 28, 28) and demo_data.train_images.dtype == torch.uint8
    assert demo_data.class_counts("train") == [1000] * 10
    assert demo_data.class_counts("test") == [200] * 10
    mean, std = demo_data.channel_stats()
    assert 0.2 < mean[0] < 0.4 and 0.3 < std[0] < 0.4  # Fashion-MNIST: 0.286 / 0.353


def test_pixel_space_round_trip(demo_data, demo_space):
    images = demo_data.train_images[:5]
    assert torch.equal(demo_space.to_uint8(demo_space.encode(images)), images)
    encoded = demo_space.encode(demo_data.train_images[:2000])
    assert abs(encoded.mean()) < 0.1 and abs(encoded.std() - 1) < 0.1
    restored = PixelSpace.from_state_dict(demo_space.state_dict())
    torch.testing.assert_close(restored.encode(images), demo_space.encode(images))


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx_reader(tmp_path, compress):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for split, n in (("train", 30), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, compress)
    data = load_dataset("fashion-mnist", str(tmp_path))
    assert data.train_images.shape == (30, 1, 28, 28) and data.test_images.shape == (20, 1, 28, 28)
    assert data.train_labels.tolist() == [i % 10 for i in range(30)]
    raw = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    assert torch.equal(data.train_images[:, 0], torch.from_numpy(raw.copy()))


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 28, 28)), False)
    (tmp_path / "x").write_bytes((tmp_path / "x").read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "x")


def test_unknown_dataset_and_missing_folder_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist-please")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("fashion-mnist", str(tmp_path / "nope"))


def test_resize_square_keeps_shape_and_content():
    images = np.zeros((2, 20, 30, 3), np.uint8)
    images[:, :, 10:20] = 255  # a white vertical band in the middle
    out = resize_square(images, 10)
    assert out.shape == (2, 10, 10, 3)
    assert out[:, :, 4:6].mean() > 200 and out[:, :, 0].mean() < 50


def test_resized_demo(demo_data):
    data = load_dataset("fashion-demo", res=32)
    assert data.image_size == (32, 32) and len(data.train_images) == len(demo_data.train_images)
