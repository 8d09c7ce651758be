import pytest
import torch

from texdistill.data import PixelSpace, load_dataset
from texdistill.models import FlatParams, ModelSpec


@pytest.fixture(scope="session")
def demo_data():
    return load_dataset("fashion-demo")


@pytest.fixture(scope="session")
def demo_space(demo_data):
    return PixelSpace.fit(demo_data)


def tiny_flat(channels: int = 1, classes: int = 3, size: int = 8, dtype=torch.float64, seed: int = 0) -> FlatParams:
    """A very small ConvNet viewed as a flat parameter vector, for exact gradient checks."""
    torch.manual_seed(seed)
    model = ModelSpec(channels, classes, size, size, width=4, depth=2).build().to(dtype)
    return FlatParams(model)
