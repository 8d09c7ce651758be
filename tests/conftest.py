import shutil
import subprocess
import sys

import pytest
import torch
from tinyrun import distill_cli, evaluate_cli, experts_cli, make_tiny_data, one_thread

from texdistill.cli import main
from texdistill.data import PixelSpace, load_dataset
from texdistill.method.models import FlatParams, ModelSpec


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The user cache of trained networks for the whole session (TEXDISTILL_CACHE, inherited by the commands the
    tests start): never the real ~/.cache/texdistill."""
    path = tmp_path_factory.mktemp("user-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEXDISTILL_CACHE", str(path))
        patch.delenv("TEXDISTILL_NO_CACHE", raising=False)
        yield path


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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The folder of tinyrun's 8×8 idx dataset (the tinyrun command lines point at it)."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def tiny_experts(tmp_path_factory, tiny_data):
    """A run folder with the tiny experts of tinyrun.experts_cli() (copy it before writing into it)."""
    out = tmp_path_factory.mktemp("tiny") / "experts-run"
    with one_thread():
        assert main([*experts_cli(), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_experts):
    """A finished tiny run (experts, 4 distillation iterations, evaluation); copy it before writing into it."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    shutil.copytree(tiny_experts, out)
    with one_thread():
        assert main([*distill_cli(), "--out", str(out)]) == 0
        assert main([*evaluate_cli(), "--out", str(out)]) == 0
    return out


@pytest.fixture
def single_thread():
    """Run the test with torch on one thread (see tinyrun.one_thread)."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """(run folder, finished process) of one `texdistill demo --quick` (about a minute), shared by the tests."""
    out = tmp_path_factory.mktemp("quick-demo") / "demo"
    result = subprocess.run([sys.executable, "-m", "texdistill", "demo", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


@pytest.fixture(scope="session")
def image_run(quick_demo, tmp_path_factory):
    """A tiny image-mode (not texture) distillation on the quick demo's experts: 2 images per class."""
    from texdistill.config import DistillConfig
    from texdistill.method import distill

    out = tmp_path_factory.mktemp("image-run") / "run"
    distill.run(DistillConfig(out=str(out), experts_dir=str(quick_demo[0] / "experts"), width=16, ipc=2,
                              iterations=2, syn_steps=2, expert_epochs=1, max_start_epoch=2, snapshot_every=1,
                              log_every=1))
    return out
