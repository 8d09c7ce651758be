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
    """(run folder, finished process) of one `texdistill demo --quick` in a fresh interpreter (about a minute on 2
    idle cores; the timeout allows a busy machine): for the slow end-to-end test only; the fast tests use
    texture_run, the same pipeline in-process."""
    out = tmp_path_factory.mktemp("quick-demo") / "demo"
    result = subprocess.run([sys.executable, "-m", "texdistill", "demo", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


# the demo-quick preset made cheaper where no product test looks: narrower nets, 2 student steps (not 5), one
# cheap judge, 2 evaluation epochs. What the products show stays: 10 classes, 56-px canvases of 28-px crops,
# snapshots at iterations 0, 5, …, 20, a recognition step, an evaluation with baselines, seams and wearability.
TEXTURE_RUN = {"width": 8, "syn_steps": 2, "judges": "lenet", "eval_epochs": 2, "wear_crops": 20}


@pytest.fixture(scope="session")
def texture_run(tmp_path_factory):
    """A finished texture run of the whole pipeline (experts → distillation → evaluation → mock-ups → export → report),
    in-process: the 'demo-quick' preset with TEXTURE_RUN's cheaper settings. Copy it before writing into it."""
    from texdistill import pipeline
    from texdistill.config import PipelineConfig, build_config
    from texdistill.presets import preset_values

    out = tmp_path_factory.mktemp("texture-run") / "run"
    values = {**preset_values("demo-quick"), **TEXTURE_RUN, "out": str(out)}
    pipeline.run(build_config(PipelineConfig, values))
    return out


@pytest.fixture(scope="session")
def image_run(texture_run, tmp_path_factory):
    """A tiny image-mode (not texture) distillation on texture_run's experts: 2 images per class."""
    from texdistill.config import DistillConfig
    from texdistill.stages import distill

    out = tmp_path_factory.mktemp("image-run") / "run"
    distill.run(DistillConfig(out=str(out), experts_dir=str(texture_run / "experts"), width=TEXTURE_RUN["width"],
                              ipc=2, iterations=2, syn_steps=2, expert_epochs=1, max_start_epoch=2, snapshot_every=1,
                              log_every=1))
    return out


# the browser tests (the report, the HTML mock-up slider): Playwright driving Debian's chromium (.ci/run apt-installs
# it; never `playwright install`, which downloads a browser of its own)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless Chromium (a Playwright Browser) for the session; skips, saying why, without it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: `pip install -e '.[dev]'` (or `pip install playwright`)")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium on PATH: `apt-get install chromium` (.ci/run does) to run the browser tests")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_page(chromium_browser):
    """A fresh page (its own context) 1200×900 px at device scale 1; `page.errors` collects console errors,
    uncaught exceptions and failed loads."""
    context = chromium_browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: message.type in ("error", "assert") and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: page.errors.append(f"failed to load {request.url[:200]}"))
    yield page
    context.close()
