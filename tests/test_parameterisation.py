"""--parameterisation fourier: an exact, linear, translation-equivariant map from coefficients to pixels, whose
gradient is the pixels' pulled back (checked against finite differences and in every gradient mode), and a run
with it resumes bit-exactly."""

import shutil

import pytest
import torch
from test_matching import relative, tiny_problem
from tinyrun import distill_cli, files_of, with_option

from texdistill.cli import main
from texdistill.config import DistillConfig
from texdistill.data import PixelSpace
from texdistill.method.matching import MatchResult, match
from texdistill.method.parameterisation import Fourier, colour_basis, spectrum_scale
from texdistill.method.state import DistillState
from texdistill.method.synthetic import TextureCanvas
from texdistill.storage import load_tensors

F64 = torch.float64


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("shape", [(8, 8), (7, 10), (9, 5)])
@pytest.mark.parametrize("channels", [1, 3])
def test_coefficients_render_back_to_the_pixels(shape, channels):
    colour = colour_basis(random(50, channels, 4, 4) * torch.tensor([1.0, 2.0, 0.5][:channels]).view(1, -1, 1, 1)
                          + random(50, 1, 4, 4, seed=1)).double() if channels == 3 else None
    fourier = Fourier(shape, 0.7, colour)
    pixels = random(2, channels, *shape)
    assert relative(fourier.render(fourier.coefficients(pixels)), pixels) < 1e-12


@pytest.mark.parametrize("shape", [(8, 8), (7, 10), (9, 5)])
def test_alpha_zero_moves_the_pixels_as_pixel_sgd_does(shape):
    # P Pᵀ = I at α = 0: a gradient step on the coefficients is the same step on the pixels
    fourier, g = Fourier(shape, 0.0), random(2, 1, *shape)
    c = fourier.coefficients(random(2, 1, *shape, seed=1))
    assert relative(fourier.render(c - fourier.pull_back(c, g)), fourier.render(c) - g) < 1e-12


def test_the_step_is_the_same_at_every_offset_of_the_torus():
    # P Pᵀ commutes with a roll: the wrap-around line is treated exactly as any interior line (no seam is special)
    fourier, g = Fourier((12, 12), 1.0), random(1, 1, 12, 12)
    c = torch.zeros_like(fourier.coefficients(g))

    def step(grad):
        return fourier.render(fourier.pull_back(c, grad))

    assert relative(step(g.roll((5, 7), dims=(2, 3))), step(g).roll((5, 7), dims=(2, 3))) < 1e-12


def test_high_frequencies_move_less_the_larger_alpha():
    scale = spectrum_scale(16, 16, 1.0, F64)
    assert scale[0, 0] == 1 and scale[1, 0] == 1  # DC and the lowest frequency move as pixels do
    assert scale[8, 0] == pytest.approx(1 / 8) and scale[0, 8] == pytest.approx(1 / 8)  # Nyquist: f₀/f = 1/8
    assert scale[0, 4] == pytest.approx((1 / 4) / 2 ** 0.5)  # an interior column: ÷ √2 (it counts twice)


def test_noise_start_is_coloured_noise_of_unit_std():
    fourier = Fourier((32, 32), 1.0)
    pixels = fourier.render(fourier.noise_start(random(4, 1, 32, 32)))
    assert pixels.std(dim=(1, 2, 3)).tolist() == pytest.approx([1.0] * 4)
    power = torch.fft.rfft2(pixels).abs().pow(2).mean(dim=(0, 1))
    assert power[1:3, 1:3].mean() > 20 * power[12:, 12:].mean()  # 1/f²-like: the low frequencies dominate


def fourier_problem(steps=3):
    student, synthetic, problem = tiny_problem(texture=True, steps=steps)
    synthetic.use_fourier(0.8)
    return student, synthetic, problem


def test_coefficient_gradient_matches_finite_differences():
    student, synthetic, problem = fourier_problem()
    eta, eps = torch.tensor(0.05, dtype=F64), 1e-6
    grad = synthetic.pull_back(match("unroll", student, synthetic, eta, problem).pixel_grad)
    c0 = synthetic.coefficients.detach().clone()

    def loss(coefficients):
        with torch.no_grad():
            synthetic.coefficients.copy_(coefficients)
        synthetic.render()
        return float(match("unroll", student, synthetic, eta, problem).loss)

    for seed in range(2):
        d = random(*c0.shape, seed=seed)
        fd = (loss(c0 + eps * d) - loss(c0 - eps * d)) / (2 * eps)
        assert float((grad * d).sum()) == pytest.approx(fd, rel=1e-5)


def test_every_gradient_mode_gives_unrolls_coefficient_gradient():
    eta = torch.tensor(0.05, dtype=F64)
    student, synthetic, problem = fourier_problem(steps=5)
    exact = synthetic.pull_back(match("unroll", student, synthetic, eta, problem).pixel_grad)
    assert relative(synthetic.pull_back(match("remat", student, synthetic, eta, problem).pixel_grad), exact) < 1e-9
    student, synthetic, problem = fourier_problem(steps=1)  # first-order is exact for one step
    one = [synthetic.pull_back(match(mode, student, synthetic, eta, problem).pixel_grad)
           for mode in ("unroll", "first-order")]
    assert relative(one[1], one[0]) < 1e-9


def test_alpha_zero_distills_the_pixels_trajectory():
    # the whole update (SGD with momentum, clamping, resync) on α = 0 coefficients equals the update on pixels
    space = PixelSpace([0.3], [0.4])
    runs = []
    for parameterisation in ("pixels", "fourier"):
        cfg = DistillConfig(texture=True, parameterisation=parameterisation, fourier_alpha=0.0, lr_img=0.5,
                            clamp_pixels=True)
        synthetic = TextureCanvas(random(3, 1, 12, 12), torch.arange(3), 3, (8, 8))
        if parameterisation == "fourier":
            synthetic.use_fourier(0.0)
        state = DistillState(cfg, synthetic, space, 0.01, torch.Generator(), torch.device("cpu"))
        for step in range(3):
            state.accept(MatchResult(torch.tensor(1.0), random(3, 1, 12, 12, seed=10 + step), torch.tensor(0.0)),
                         torch.tensor(0.0))
        runs.append(synthetic.pixels.detach())
    assert relative(runs[1], runs[0]) < 1e-12


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_fourier_run_continued_equals_one_run(tmp_path, tiny_experts, optimizer):
    argv = [*distill_cli(), "--texture", "--parameterisation", "fourier", "--init", "noise", "--ckpt-every", "2",
            "--optimizer-img", optimizer, *(["--lr-img", "0.05"] if optimizer == "adam" else [])]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    for folder in (whole, parts):
        shutil.copytree(tiny_experts, folder)
    assert main([*argv, "--out", str(whole)]) == 0
    assert main([*with_option(argv, "--iterations", "2"), "--out", str(parts)]) == 0
    assert main([*argv, "--out", str(parts)]) == 0  # continues from iteration 2
    ours, theirs = files_of(parts), files_of(whole)
    for path in (p for p in theirs if p.endswith((".safetensors", ".png")) and "/experts/" not in p
                 and not p.endswith("checkpoint.safetensors")):
        assert ours[path.replace(str(whole), str(parts))] == theirs[path], path
    tensors, _ = load_tensors(whole / "checkpoint.safetensors")
    buffer = "now.momentum_img" if optimizer == "sgd" else "now.adam_img_exp_avg_sq"
    assert "now.coefficients" in tensors and buffer in tensors
    assert tensors[buffer].shape == tensors["now.coefficients"].shape
    assert ("now.adam_img_step" in tensors) == (optimizer == "adam")
