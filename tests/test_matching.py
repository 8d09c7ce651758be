import pytest
import torch
from conftest import tiny_flat

from texdistill.config import GRAD_MODES, MATCH_LOSSES, DistillConfig
from texdistill.method import matching
from texdistill.method.augment import DSAConfig
from texdistill.method.matching import (
    COMPILABLE_KERNELS,
    EAGER_KERNELS,
    GRADIENT_MODES,
    MatchProblem,
    Student,
    match,
)
from texdistill.method.synthetic import ImageSet, TextureCanvas


def tiny_problem(texture: bool, seed: int = 0, steps: int = 3, dsa_mode: str = "one", soft: bool = False,
                 loss: str = "normalized"):
    """A float64 student with DSA, a synthetic set of 3 classes (soft labels: learned, image sets only) and an
    expert segment."""
    flat = tiny_flat(seed=seed)
    g = torch.Generator().manual_seed(seed)
    if texture:
        synthetic = TextureCanvas(torch.randn(3, 1, 12, 12, generator=g, dtype=torch.float64),
                                  torch.arange(3), 3, (8, 8), canvas_samples=2)
    else:
        # 4 of the 6 images per step, so replaying a step must also replay its draw
        synthetic = ImageSet(torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64),
                             torch.arange(3).repeat_interleave(2), 3, batch=4)
    if soft:
        synthetic.use_soft_labels(torch.randn(len(synthetic.labels), 3, generator=g, dtype=torch.float64))
    start = flat.get()
    target = start + 0.05 * torch.randn(start.shape, generator=g, dtype=torch.float64)
    problem = MatchProblem(start, target, [11 * (i + 1) for i in range(steps)], loss, tuple(flat.numels))
    return Student(flat, DSAConfig(mode=dsa_mode)), synthetic, problem


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def loss_at(student, synthetic, problem, pixels, eta, logits=None):
    with torch.no_grad():
        saved = synthetic.pixels.detach().clone()
        synthetic.pixels.copy_(pixels)
        if logits is not None:
            saved_logits = synthetic.label_logits.detach().clone()
            synthetic.label_logits.copy_(logits)
        loss = match("unroll", student, synthetic, eta, problem).loss
        synthetic.pixels.copy_(saved)
        if logits is not None:
            synthetic.label_logits.copy_(saved_logits)
    return loss


@pytest.mark.parametrize("loss", MATCH_LOSSES)
@pytest.mark.parametrize("texture", [False, True])
def test_unroll_gradient_matches_finite_differences(texture, loss):
    student, synthetic, problem = tiny_problem(texture, loss=loss)
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


def test_soft_label_gradient_matches_finite_differences():
    student, synthetic, problem = tiny_problem(texture=False, soft=True)
    eta = torch.tensor(0.05, dtype=torch.float64)
    result = match("unroll", student, synthetic, eta, problem)
    p0, z0, eps = synthetic.pixels.detach().clone(), synthetic.label_logits.detach().clone(), 1e-6
    assert result.label_grad.shape == z0.shape and result.label_grad.abs().sum() > 0
    for direction_seed in range(2):
        d = torch.randn(z0.shape, generator=torch.Generator().manual_seed(direction_seed), dtype=torch.float64)
        fd = (loss_at(student, synthetic, problem, p0, eta, z0 + eps * d)
              - loss_at(student, synthetic, problem, p0, eta, z0 - eps * d)) / (2 * eps)
        assert float((result.label_grad * d).sum()) == pytest.approx(float(fd), rel=1e-5)


def test_remat_equals_unroll_with_soft_labels():
    texture, soft = False, True
    student, synthetic, problem = tiny_problem(texture, steps=6, soft=soft)
    eta = torch.tensor(0.05, dtype=torch.float64)
    exact = match("unroll", student, synthetic, eta, problem)
    remat = match("remat", student, synthetic, eta, problem)
    assert relative(remat.label_grad, exact.label_grad) < 1e-9
    assert relative(remat.pixel_grad, exact.pixel_grad) < 1e-9
    assert float(remat.lr_grad) == pytest.approx(float(exact.lr_grad), rel=1e-9)
    one_step = tiny_problem(texture, steps=1, soft=soft)  # first-order is exact for one step, labels too
    assert relative(match("first-order", *one_step[:2], eta, one_step[2]).label_grad,
                    match("unroll", *one_step[:2], eta, one_step[2]).label_grad) < 1e-9
    assert match("remat", *tiny_problem(texture)[:2], eta, problem).label_grad is None  # hard labels: none


@pytest.mark.parametrize("loss", MATCH_LOSSES)
def test_matching_loss_is_one_at_the_start_and_zero_at_the_target(loss):
    start, target = torch.zeros(5), torch.tensor([1.0, 1.0, 1.0, 2.0, 2.0])
    problem = MatchProblem(start, target, [], loss, (3, 2))
    assert problem.loss(start) == 1 and problem.loss(target) == 0


def test_per_layer_loss_weighs_every_layer_alike():
    start, target = torch.zeros(4), torch.tensor([1.0, 1.0, 1.0, 10.0])
    halfway_small = torch.tensor([0.0, 0.0, 0.0, 10.0])  # the large layer matched, the small one not at all
    problem = MatchProblem(start, target, [], "per-layer", (3, 1))
    assert float(problem.loss(halfway_small)) == pytest.approx(0.5)
    assert float(MatchProblem(start, target, []).loss(halfway_small)) == pytest.approx(3 / 103)


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


@pytest.mark.parametrize("texture", [False, True])
@pytest.mark.parametrize("dsa_mode, loss", [("one", "normalized"), ("all", "normalized"), ("one", "per-layer")])
def test_remat_equals_unroll(texture, dsa_mode, loss):
    student, synthetic, problem = tiny_problem(texture, steps=6, dsa_mode=dsa_mode, loss=loss)
    eta = torch.tensor(0.05, dtype=torch.float64)
    exact = match("unroll", student, synthetic, eta, problem)
    remat = match("remat", student, synthetic, eta, problem)
    assert relative(remat.pixel_grad, exact.pixel_grad) < 1e-9
    assert float(remat.lr_grad) == pytest.approx(float(exact.lr_grad), rel=1e-9)
    assert float(remat.loss) == pytest.approx(float(exact.loss), rel=1e-12)


@pytest.mark.parametrize("kept", [1, 3, 6, 99])
@pytest.mark.parametrize("texture, soft", [(False, False), (True, False), (False, True)])
def test_kept_step_graphs_give_the_exact_gradient(texture, soft, kept):
    # the last `kept` steps take their products from the forward pass's graph instead of a replay: still unroll's
    # gradient, in remat (exact) and in first-order (its own approximation, unchanged)
    student, synthetic, problem = tiny_problem(texture, steps=6, soft=soft)
    eta = torch.tensor(0.05, dtype=torch.float64)
    exact, approx = (match(mode, student, synthetic, eta, problem) for mode in ("unroll", "first-order"))
    student.kept_steps = kept
    for mode, reference in (("remat", exact), ("first-order", approx)):
        result = match(mode, student, synthetic, eta, problem)
        assert relative(result.pixel_grad, reference.pixel_grad) < 1e-9
        assert float(result.lr_grad) == pytest.approx(float(reference.lr_grad), rel=1e-9)
        assert float(result.loss) == pytest.approx(float(reference.loss), rel=1e-12)
        if soft:
            assert relative(result.label_grad, reference.label_grad) < 1e-9


def test_kept_steps_keep_graphs_only_for_the_last_steps(monkeypatch):
    student, synthetic, problem = tiny_problem(texture=True, steps=5)
    replayed = []
    original = matching.replayed_step
    monkeypatch.setattr(matching, "replayed_step", lambda s, x, seed: replayed.append(seed) or original(s, x, seed))
    student.kept_steps = 2
    thetas, _, _, kept = matching.student_trajectory(student, synthetic, torch.tensor(0.05, dtype=torch.float64),
                                                     problem)
    assert sorted(kept) == [3, 4] and all(k.graph[0].requires_grad for k in kept.values())
    replayed.clear()
    match("remat", student, synthetic, torch.tensor(0.05, dtype=torch.float64), problem)
    assert replayed[5:] == problem.step_seeds[2::-1]  # the sweep replays only the steps without a graph


def test_kept_steps_auto_fills_a_quarter_of_the_memory_and_rejects_nonsense():
    from texdistill.errors import ConfigError
    assert matching.kept_steps_for("auto", 20, step_bytes=100, memory_bytes=4000) == 10
    assert matching.kept_steps_for("auto", 20, step_bytes=100, memory_bytes=10**9) == 20
    assert matching.kept_steps_for("auto", 20, step_bytes=10**9, memory_bytes=10**9) == 0
    assert matching.kept_steps_for("7", 20, 1, 1) == 7 and matching.kept_steps_for(50, 20, 1, 1) == 20
    for bad in ("some", "-1", "2.5"):
        with pytest.raises(ConfigError, match="--kept-steps"):
            DistillConfig(kept_steps=bad)


@pytest.mark.parametrize("texture", [False, True])
def test_replaying_a_step_gives_the_same_batch_and_view_bit_for_bit(texture):
    student, synthetic, _ = tiny_problem(texture)

    def step_batch(seed):  # what student step `seed` trains on: its draw, then its DSA view
        x, labels = synthetic.sample(seed)
        return student.view(x, seed), labels

    (view, labels), (again, again_labels), (other, _) = step_batch(123), step_batch(123), step_batch(124)
    assert torch.equal(view, again) and torch.equal(labels, again_labels)
    assert not torch.equal(view, other)


def test_first_order_differs_from_the_exact_gradient_by_a_bounded_nonzero_amount():
    student, synthetic, problem = tiny_problem(texture=True, steps=6)
    eta = torch.tensor(0.05, dtype=torch.float64)
    exact = match("remat", student, synthetic, eta, problem)
    approx = match("first-order", student, synthetic, eta, problem)
    error = relative(approx.pixel_grad, exact.pixel_grad)
    assert 1e-4 < error < 0.5
    cosine = float((approx.pixel_grad * exact.pixel_grad).sum() / (approx.pixel_grad.norm() * exact.pixel_grad.norm()))
    assert cosine > 0.9  # still a descent direction
    assert 1e-4 < abs(float(approx.lr_grad / exact.lr_grad) - 1) < 0.5
    assert float(approx.loss) == float(exact.loss)


@pytest.mark.parametrize("loss", MATCH_LOSSES)
def test_first_order_is_exact_for_a_single_step(loss):
    # with N = 1 the dropped term η H_θθ λ never enters: λ_0 is not used by any gradient
    student, synthetic, problem = tiny_problem(texture=False, steps=1, loss=loss)
    eta = torch.tensor(0.05, dtype=torch.float64)
    exact = match("unroll", student, synthetic, eta, problem)
    approx = match("first-order", student, synthetic, eta, problem)
    assert relative(approx.pixel_grad, exact.pixel_grad) < 1e-9
    assert float(approx.lr_grad) == pytest.approx(float(exact.lr_grad), rel=1e-9)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("kernel", ["grad", "hessian_product", "cross_product"])
def test_autograd_and_torch_func_kernels_agree(kernel, soft):
    # the torch.func formulation is what --compile compiles; it must be the same math as the eager one
    student, synthetic, problem = tiny_problem(texture=not soft, soft=soft)  # soft labels: image sets only
    x, targets = synthetic.sample(5)
    lam = torch.randn(problem.start.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    args = (problem.start, student.view(x.detach(), 5), targets.detach()) + ((lam,) if kernel != "grad" else ())
    eager = EAGER_KERNELS[kernel](student.view_loss, *args)
    func = COMPILABLE_KERNELS[kernel](student.view_loss, *args)
    eager, func = (t if isinstance(t, tuple) else (t,) for t in (eager, func))
    assert len(eager) == len(func)
    for a, b in zip(eager, func):
        if a is None or b is None:  # the targets' product, for hard labels
            assert a is None and b is None and not soft
            continue
        assert a.shape == b.shape and relative(a, b) < 1e-12 and not a.requires_grad


def test_config_offers_every_gradient_mode_and_defaults_to_remat():
    assert set(GRAD_MODES) == set(GRADIENT_MODES)
    assert DistillConfig().grad_mode == "remat"


def test_compile_auto_only_for_long_runs_of_the_kernel_modes():
    assert not DistillConfig(iterations=500, syn_steps=12).compile_kernels()  # the demo: not worth compiling
    assert DistillConfig(iterations=5000, syn_steps=20).compile_kernels()
    assert not DistillConfig(iterations=5000, syn_steps=20, grad_mode="unroll").compile_kernels()
    assert DistillConfig(iterations=1, compile="on").compile_kernels()
    assert not DistillConfig(iterations=10**6, compile="off").compile_kernels()


def test_a_failing_compile_falls_back_to_eager(monkeypatch, caplog):
    from torch._dynamo.exc import TorchDynamoException

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            raise TorchDynamoException("no C++ compiler found")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    student, synthetic, problem = tiny_problem(texture=False)
    eta = torch.tensor(0.05, dtype=torch.float64)
    exact = match("remat", student, synthetic, eta, problem)
    compiled = Student(student.flat, student.dsa, compile=True)
    result = match("remat", compiled, synthetic, eta, problem)
    assert not compiled.compile and "torch.compile failed (no C++ compiler found)" in caplog.text
    assert torch.equal(result.pixel_grad, exact.pixel_grad)


@pytest.mark.parametrize("mode", ["remat", "first-order"])
def test_traced_kernels_give_the_eager_gradient(mode, monkeypatch):
    # what --compile runs, up to code generation: dynamo traces the torch.func kernels, AOTAutograd builds their
    # graphs, which then run eagerly (seconds; the slow test below also generates and compiles the code)
    monkeypatch.setattr(matching, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    student, synthetic, problem = tiny_problem(texture=True)
    eta = torch.tensor(0.05, dtype=torch.float64)
    eager = match(mode, student, synthetic, eta, problem)
    traced_student = Student(student.flat, student.dsa, compile=True)
    traced = match(mode, traced_student, synthetic, eta, problem)
    assert traced_student.compile and traced_student._kernels  # it did trace, it did not fall back
    assert relative(traced.pixel_grad, eager.pixel_grad) < 1e-9
    assert float(traced.lr_grad) == pytest.approx(float(eager.lr_grad), rel=1e-9)
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["remat", "first-order"])
def test_compiled_kernels_give_the_eager_gradient(mode):
    student, synthetic, problem = tiny_problem(texture=True)
    eta = torch.tensor(0.05, dtype=torch.float64)
    eager = match(mode, student, synthetic, eta, problem)
    compiled_student = Student(student.flat, student.dsa, compile=True)
    compiled = match(mode, compiled_student, synthetic, eta, problem)
    assert compiled_student.compile  # it did compile, it did not fall back
    assert relative(compiled.pixel_grad, eager.pixel_grad) < 1e-9
    assert float(compiled.lr_grad) == pytest.approx(float(eager.lr_grad), rel=1e-9)
