import pytest
import torch

from texdistill.errors import ConfigError
from texdistill.method.augment import DSAConfig, apply, augment, sample_params


def smooth_images(b=6, c=3, h=16, w=16):
    y, x = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.stack([x, y, x * y])[:c]
    return (base.unsqueeze(0) + 0.1 * torch.arange(b).view(b, 1, 1, 1)).contiguous()


def test_same_seed_same_output_and_different_seed_differs():
    x = smooth_images()
    cfg = DSAConfig(mode="all")
    assert torch.equal(augment(x, cfg, 7), augment(x, cfg, 7))
    assert not torch.equal(augment(x, cfg, 7), augment(x, cfg, 8))


def test_gradient_flows_to_input():
    x = smooth_images().requires_grad_(True)
    augment(x, DSAConfig(mode="all"), 3).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_each_sample_gets_its_own_parameters():
    params = sample_params(DSAConfig(strategy="rotate"), 8, 16, 16, torch.Generator().manual_seed(0))
    angles = params[0][1]["angle"]
    assert angles.unique().numel() == 8 and angles.abs().max() <= 15 / 180 * torch.pi


def test_mode_one_applies_a_single_transform():
    generator = torch.Generator().manual_seed(1)
    names = {sample_params(DSAConfig(), 2, 8, 8, generator)[0][0] for _ in range(60)}
    assert names == {"color", "crop", "cutout", "flip", "scale", "rotate"}
    assert len(sample_params(DSAConfig(mode="all"), 2, 8, 8, generator)) == 6


def only(name, **values):
    """Params for a single transform with explicit values."""
    return [(name, {k: torch.as_tensor(v) for k, v in values.items()})]


def test_flip_mirrors_horizontally():
    x = smooth_images(b=2)
    out = apply(x, only("flip", flip=[True, False]))
    assert torch.equal(out[0], x[0].flip(2)) and torch.equal(out[1], x[1])


def test_crop_translates_with_zero_fill():
    x = smooth_images(b=1)
    out = apply(x, only("crop", dy=[2], dx=[-3]))
    assert torch.equal(out[0, :, :-2, 3:], x[0, :, 2:, :-3])
    assert torch.all(out[0, :, -2:, :] == 0) and torch.all(out[0, :, :, :3] == 0)


def test_cutout_zeroes_one_square():
    x = smooth_images(b=1) + 5
    out = apply(x, only("cutout", cy=[6], cx=[6], height=[4], width=[4]))  # the hole: corner and size
    assert torch.all(out[0, :, 6:10, 6:10] == 0)
    assert torch.equal(out[0, :, :6], x[0, :, :6]) and (out == 0).sum() == 3 * 16


def test_color_changes_brightness_saturation_contrast():
    x = smooth_images(b=1)
    bright = apply(x, only("color", brightness=[0.3], saturation=[1.0], contrast=[1.0]))
    torch.testing.assert_close(bright, x + 0.3)
    gray = apply(x, only("color", brightness=[0.0], saturation=[0.0], contrast=[1.0]))
    torch.testing.assert_close(gray, x.mean(1, keepdim=True).expand_as(x))
    flat = apply(x, only("color", brightness=[0.0], saturation=[1.0], contrast=[0.0]))
    torch.testing.assert_close(flat, x.mean().expand_as(x))


def test_scale_and_rotate_are_identity_at_neutral_values_and_change_otherwise():
    x = smooth_images(b=1)
    torch.testing.assert_close(apply(x, only("scale", sx=[1.0], sy=[1.0])), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(apply(x, only("rotate", angle=[0.0])), x, atol=1e-5, rtol=0)
    zoomed = apply(x, only("scale", sx=[0.5], sy=[0.5]))
    assert zoomed[0, 0].max() < x[0, 0].max() - 0.3  # shows the centre half: smaller x range
    quarter = apply(x, only("rotate", angle=[torch.pi / 2]))
    # a quarter turn maps the horizontal ramp (channel 0) onto the negated vertical ramp (channel 1)
    torch.testing.assert_close(quarter[0, 0], -x[0, 1], atol=1e-5, rtol=0)


def test_bad_strategy_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown DSA transform"):
        DSAConfig(strategy="color_blur")
