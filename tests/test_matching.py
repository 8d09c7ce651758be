import pytest
import torch

from conftest import tiny_flat
from texdistill.augment import DSAConfig
from texdistill.matching import MatchProblem, Student, match, matching_loss
from texdistill.synthetic import ImageSet, TextureCanvas


def tiny_problem(texture: bool, seed: int = 0):
    """A float64 student, a synthetic set of 3 classes and an expert segment to match."""
    flat = tiny_flat(seed=seed)
    g = torch.Generator().manual_seed(seed)
    if texture:
        synthetic = TextureCanvas(torch.randn(3, 1, 12, 12, generator=g, dtype=torch.float64),
                                  torch.arange(3), 3, (8, 8), canvas_samples=2)
    else:
        synthetic = ImageSet(torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64),
                             torch.arange(3).repeat_interleave(2), 3)
    start = flat.get()
    target = start + 0.05 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    problem = MatchProblem(start, target, [11, 22, 33])
    return Student(flat, DSAConfig()), synthetic, problem


def loss_at(student, synthetic, problem, pixels, eta):
    with torch.no_grad():
        saved = synthetic.pixels.detach().clone()
        synthetic.pixels.copy_(pixels)
        loss = match("unroll", student, synthetic, eta, problem).loss
        synthetic.pixels.copy_(saved)
    return loss


@pytest.mark.parametrize("texture", [False, True])
def test_unroll_gradient_matches_finite_differences(texture):
    student, synthetic, problem = tiny_problem(texture)
    eta = torch.tensor(0.05, dtype=torch.float64)
    result = match("unroll", student, synthetic, eta, problem)
    p0 = synthetic.pixels.detach().clone()
    eps = 1e-6
    for direction_seed in range(2):
        d = torch.randn(p0.shape, generator=torch.Generator().manual_seed(direction_seed), dtype=torch.float64)
        fd = (loss_at(student, synthetic, problem, p0 + eps * d, eta)
              - loss_at(student, synthetic, problem, p0 - eps * d, eta)) / (2 * eps)
        assert float((result.pixel_grad * d).sum()) == pytest.approx(float(fd), rel=1e-5)
    fd_eta = (loss_at(student, synthetic, problem, p0, eta + eps)
              - loss_at(student, synthetic, problem, p0, eta - eps)) / (2 * eps)
    assert float(result.lr_grad) == pytest.approx(float(fd_eta), rel=1e-5)


def test_matching_loss_is_one_at_the_start_and_zero_at_the_target():
    start, target = torch.zeros(5), torch.ones(5)
    assert matching_loss(start, start, target) == 1 and matching_loss(target, start, target) == 0


def test_one_gradient_step_decreases_the_matching_loss():
    student, synthetic, problem = tiny_problem(texture=True, seed=1)
    eta = torch.tensor(0.05, dtype=torch.float64)
    before = match("unroll", student, synthetic, eta, problem)
    with torch.no_grad():
        synthetic.pixels -= 1e-1 * before.pixel_grad / before.pixel_grad.norm()
    after = match("unroll", student, synthetic, eta, problem)
    assert after.loss < before.loss


def test_unknown_grad_mode_is_a_clear_error():
    from texdistill.errors import ConfigError
    student, synthetic, problem = tiny_problem(False)
    with pytest.raises(ConfigError, match="--grad-mode"):
        match("magic", student, synthetic, torch.tensor(0.01), problem)
