import copy

import pytest
import torch

from scripts import benchmark_script
from texdistill.errors import ConfigError
from texdistill.method.models import AvgPool2, FlatParams, ModelSpec, depth_for_resolution


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("res", [28, 32, 64, 128])
def test_convnet_output_shape(channels, res):
    depth = depth_for_resolution(res)
    model = ModelSpec(channels, 10, res, res, width=8, depth=depth).build()
    assert model(torch.randn(2, channels, res, res)).shape == (2, 10)


def test_depth_follows_the_literature():
    assert [depth_for_resolution(r) for r in (28, 32, 64, 128, 256)] == [3, 3, 4, 5, 6]


def test_flat_forward_equals_module_forward():
    model = ModelSpec(3, 5, 32, 32, width=8, depth=3).build()
    flat = FlatParams(model)
    x = torch.randn(4, 3, 32, 32)
    theta = flat.get()
    assert theta.shape == (flat.size,) and flat.size == sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(flat.forward(theta, x), model(x), rtol=0, atol=0)
    # a different θ changes the output; set() writes it into the module
    other = theta + 0.1 * torch.randn_like(theta)
    out = flat.forward(other, x)
    assert not torch.allclose(out, model(x))
    flat.set(other)
    torch.testing.assert_close(model(x), out)


def test_instance_norm_is_groupnorm_per_channel():
    model = ModelSpec(1, 2, 28, 28, width=8, depth=3).build()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and all(n.num_groups == n.num_channels == 8 and n.affine for n in norms)


def test_too_deep_for_resolution_is_a_clear_error():
    with pytest.raises(ConfigError, match="--depth"):
        ModelSpec(1, 2, 8, 8, width=4, depth=5)


@pytest.mark.parametrize("h, w", [(8, 8), (7, 7), (6, 9), (3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_avg_pool_2_is_avg_pool2d_with_its_derivatives(h, w, channels_last):
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    pool = AvgPool2()
    torch.testing.assert_close(pool(x), torch.nn.functional.avg_pool2d(x, 2), rtol=1e-12, atol=1e-12)
    x = x[:1, :2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(pool, (x,)) and torch.autograd.gradgradcheck(pool, (x,))


def test_step_anatomy_variants_are_the_same_function_and_the_benchmark_runs(capsys, monkeypatch):
    step_anatomy = benchmark_script("step_anatomy")
    torch.manual_seed(0)
    spec = ModelSpec(1, 3, 8, 8, width=4, depth=2)
    reference = spec.build()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_()  # norm weights and biases away from 1 and 0, so a variant that ignored them would differ
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    for name in ("var_mean", "instance_norm", "avg_pool2d", "slices"):
        model = step_anatomy.variant(copy.deepcopy(reference), name).double()
        torch.testing.assert_close(model(x), copy.deepcopy(reference).double()(x), rtol=1e-10, atol=1e-10)
    monkeypatch.setattr("sys.argv", ["step_anatomy.py", "--width", "4", "--res", "8", "--batch", "2", "--repeats", "1"])
    step_anatomy.main()
    out = capsys.readouterr().out
    assert "as used" in out and "batch in chunks of 1" in out
