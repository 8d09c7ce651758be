import numpy as np
import pytest
import torch
from datafiles import save_image
from PIL import Image

from texdistill.config import DistillConfig, ExpertsConfig
from texdistill.data import ImageDataset, PixelSpace, load_dataset
from texdistill.data.zca import ZCAFilter
from texdistill.errors import ConfigError
from texdistill.method.distill import Distiller
from texdistill.method.experts import ExpertBank
from texdistill.method.setfile import load_result
from texdistill.products.mockup import class_units
from texdistill.stages import distill
from texdistill.stages.experts import ExpertTrainer

SIDE, CHANNELS = 8, 2
MIXING = torch.tensor([[1.0, 0.4], [0.4, 0.7]], dtype=torch.float64)


def blur_kernel() -> torch.Tensor:
    """A separable, flip-symmetric (SIDE, SIDE) blur on the torus."""
    g = torch.exp(-torch.tensor([0, 1, 2, 3, 4, 3, 2, 1], dtype=torch.float64) ** 2 / 2)
    return torch.outer(g, g) / g.sum() ** 2 * 4


def blur_autocorrelation() -> torch.Tensor:
    """Circular autocorrelation (SIDE, SIDE) of the blur kernel."""
    spectrum = torch.fft.fft2(blur_kernel())
    return torch.fft.ifft2(spectrum * spectrum.conj()).real


def stationary_process(n: int, seed: int = 0) -> torch.Tensor:
    """n periodic images (n, C, SIDE, SIDE): blurred white noise, channels mixed by MIXING."""
    z = torch.randn(n, CHANNELS, SIDE, SIDE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    blurred = torch.fft.ifft2(torch.fft.fft2(z) * torch.fft.fft2(blur_kernel())).real
    return torch.einsum("cd,ndyx->ncyx", MIXING, blurred)


def true_autocov() -> torch.Tensor:
    """The process's autocovariance in the biased linear-lag form ZCAFilter stores, (C, C, 2S-1, 2S-1)."""
    lags = torch.arange(-(SIDE - 1), SIDE)
    circular = blur_autocorrelation()[lags.view(-1, 1) % SIDE, lags.view(1, -1) % SIDE]
    taper = torch.outer(1 - lags.abs() / SIDE, 1 - lags.abs() / SIDE).to(torch.float64)
    return (MIXING @ MIXING.T).view(CHANNELS, CHANNELS, 1, 1) * circular * taper


def dense_zca(covariance: torch.Tensor, eps: float) -> torch.Tensor:
    """kornia/MTT: W = U (S + eps)^-1/2 Uᵀ of the full pixel covariance."""
    s, u = torch.linalg.eigh(covariance)
    return u @ torch.diag((s + eps) ** -0.5) @ u.T


def test_on_stationary_periodic_data_it_is_exactly_mtts_dense_zca():
    eps = 0.1
    lags = torch.arange(SIDE)
    a = blur_autocorrelation()
    # dense covariance of the C·S·S pixel vector: Σ[(c,p),(d,q)] = (M Mᵀ)_cd A(q − p)
    dy = (lags.view(-1, 1, 1, 1) - lags.view(1, 1, -1, 1)) % SIDE
    dx = (lags.view(1, -1, 1, 1) - lags.view(1, 1, 1, -1)) % SIDE
    spatial = a[dy, dx].reshape(SIDE * SIDE, SIDE * SIDE)
    covariance = torch.kron(MIXING @ MIXING.T, spatial)
    x = stationary_process(5, seed=1)
    dense = (x.flatten(1) @ dense_zca(covariance, eps)).view_as(x)
    ours = ZCAFilter(true_autocov(), eps).whiten(x, periodic=True)
    torch.testing.assert_close(ours.double(), dense, atol=2e-5, rtol=1e-4)


def test_fit_recovers_the_autocovariance():
    x = stationary_process(3000)
    images = (x / x.abs().max() * 100 + 128).round().clamp(0, 255).to(torch.uint8)
    fitted = ZCAFilter.fit(images, images.double().div(255).mean(dim=(0, 2, 3)))
    expected = true_autocov() * (100 / x.abs().max() / 255) ** 2
    assert ((fitted.autocov - expected).norm() / expected.norm()).item() < 0.05


@pytest.fixture(scope="module")
def colour_space():
    # smooth colour fields plus a little noise: strongly correlated neighbours, as in photos
    coarse = torch.rand(40, 3, 6, 6, generator=torch.Generator().manual_seed(0)) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(24, 24), mode="bicubic", align_corners=False)
    noise = torch.randn(smooth.shape, generator=torch.Generator().manual_seed(1)) * 8
    images = (smooth + noise).round().clamp(0, 255).to(torch.uint8)
    data = ImageDataset("t", images, torch.arange(40) % 2, images[:4], torch.arange(4) % 2, ["a", "b"])
    return PixelSpace.fit(data, zca=True), images


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("size", [(24, 24), (48, 48), (36, 30), (7, 5)])
def test_inverse_of_forward_is_identity_for_any_size(colour_space, periodic, size):
    space, _ = colour_space
    x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(space.zca.unwhiten(space.zca.whiten(x, periodic), periodic), x, atol=1e-4, rtol=1e-4)


def test_pixel_space_round_trips_uint8_images_and_canvases(colour_space):
    space, images = colour_space
    assert space.whitened and space.std.flatten().tolist() == [1.0, 1.0, 1.0]  # ZCA replaces std (MTT)
    assert torch.equal(space.to_uint8(space.encode(images[:5])), images[:5])
    canvas = torch.cat([torch.cat([images[0], images[1]], 2), torch.cat([images[2], images[3]], 2)], 1)[None]
    assert torch.equal(space.to_uint8(space.encode(canvas, periodic=True), periodic=True), canvas)
    whitened = space.encode(images)

    def power(x: torch.Tensor) -> torch.Tensor:  # average periodogram over images and channels, (H, W)
        return (torch.fft.fft2(x - x.mean(dim=(0, 2, 3), keepdim=True)).abs() ** 2).mean(dim=(0, 1)) / x[0, 0].numel()

    raw, white = power(images.double() / 255), power(space.encode(images, periodic=True).double())
    # whitening maps each frequency's power S to S / (S + eps) < 1 and flattens the spectrum
    assert white.max() < 1 < raw.max() and raw.max() / raw.min() > 10 * white.max() / white.min()
    restored = PixelSpace.from_state_dict(space.state_dict())
    torch.testing.assert_close(restored.encode(images[:3]), space.encode(images[:3]))
    torch.testing.assert_close(restored.decode(whitened[:3], True), space.decode(whitened[:3], True))


def test_memory_stays_small_at_128_px():
    images = torch.randint(0, 256, (4, 3, 128, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    zca = ZCAFilter.fit(images, images.double().div(255).mean(dim=(0, 2, 3)))
    state = zca.state_dict()["autocov"]
    assert state.shape == (3, 3, 255, 255) and state.numel() * 4 < 2.5e6  # vs 49152² floats = 9.7 GB dense
    canvas = torch.randn(1, 3, 256, 256)
    torch.testing.assert_close(zca.unwhiten(zca.whiten(canvas, True), True), canvas, atol=2e-4, rtol=1e-4)


def test_texture_distillation_with_zca(tmp_path):
    rng = np.random.default_rng(1)
    for cls, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        for i in range(12):
            image = np.clip(rng.normal(colour, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
            save_image(tmp_path / "data" / cls / f"{i}.png", image)
    common = dict(out=str(tmp_path / "run"), data="folder", data_dir=str(tmp_path / "data"), res=8, width=8,
                  zca=True, holdout=0.25)
    ExpertTrainer(ExpertsConfig(**common, num_experts=1, epochs=2, batch_train=8)).run()
    cfg = DistillConfig(**common, texture=True, iterations=2, syn_steps=3, expert_epochs=1, max_start_epoch=2,
                        init="real", ckpt_every=1, snapshot_every=1)
    distiller = Distiller(cfg)
    assert distiller.space.whitened and distiller.synthetic.pixels.shape == (2, 3, 16, 16)
    before = distiller.synthetic.pixels.detach().clone()
    record = distiller.step()
    assert np.isfinite(record["loss"]) and record["grad_norm"] > 0 and "skipped" not in record
    assert not torch.equal(distiller.synthetic.pixels.detach(), before)
    distill.run(cfg)
    synthetic, _, space = load_result(cfg.run_dir)
    assert space.whitened
    png = np.asarray(Image.open(cfg.run_dir / "textures" / "red.png"))
    decoded = space.to_uint8(synthetic.pixels, periodic=True)[1].permute(1, 2, 0).numpy()  # classes: blue, red
    assert np.array_equal(png, decoded)  # the PNG is the ZCA-inverted canvas
    assert png[..., 0].mean() > png[..., 2].mean()  # and looks like its class: red, not whitened noise
    assert np.array_equal(class_units(cfg.run_dir)["red"].permute(1, 2, 0).numpy(), png)  # mock-ups decode alike
    with pytest.raises(ConfigError, match="add --zca"):
        Distiller(DistillConfig(**{**common, "zca": False}, texture=True, max_start_epoch=2, expert_epochs=1,
                                force=True))


def test_experts_store_the_zca_space(tmp_path):
    data = load_dataset("fashion-demo", classes=("bag", "sandal"))
    cfg = ExpertsConfig(out=str(tmp_path), width=4, num_experts=1, epochs=1, zca=True)
    trainer = ExpertTrainer(cfg, data)
    trainer.run()
    stored = ExpertBank.open(tmp_path / "experts").space()
    assert stored.whitened
    torch.testing.assert_close(stored.encode(data.test_images[:4]), trainer.space.encode(data.test_images[:4]))


@pytest.mark.parametrize("periodic", [False, True])
def test_projection_keeps_pixels_displayable(colour_space, periodic):
    whitened, _ = colour_space
    plain = PixelSpace([0.3, 0.4, 0.5], [0.2, 0.25, 0.3])
    for space in (plain, whitened):
        x = 3 * torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))  # far outside [0, 1] shown
        projected = space.project(x, periodic)
        shown = space.decode(projected, periodic)  # decode clamps: compare with the unclamped display values
        unclamped = space.zca.unwhiten(projected, periodic) if space.zca else projected
        unclamped = unclamped * space.std + space.mean
        assert unclamped.min() > -1e-4 and unclamped.max() < 1 + 1e-4
        torch.testing.assert_close(shown, unclamped.clamp(0, 1))
        torch.testing.assert_close(space.project(projected, periodic), projected, atol=1e-4, rtol=1e-4)  # idempotent
        inside = space.encode((torch.rand(2, 3, 12, 12) * 255).to(torch.uint8), periodic)
        torch.testing.assert_close(space.project(inside, periodic), inside, atol=1e-4, rtol=1e-4)  # nothing to move
    exact = plain.project(torch.tensor([[[[10.0]], [[-10.0]], [[0.0]]]]))
    assert exact.flatten().tolist() == pytest.approx([(1 - 0.3) / 0.2, (0 - 0.4) / 0.25, 0.0])
