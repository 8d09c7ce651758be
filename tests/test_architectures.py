"""The evaluation architectures: the literature's definitions, shaped for any image size and channel count."""

import pytest
import torch

from texdistill.errors import ConfigError
from texdistill.method.architectures import ARCHITECTURES, build


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("channels, size", [(1, 8), (1, 28), (3, 32), (3, 64)])
def test_every_architecture_classifies_any_size(name, channels, size):
    model = build(name, channels, 7, size, width=8)
    model.eval()
    assert model(torch.randn(2, channels, size, size)).shape == (2, 7)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_literature():
    # ResNet-18 for 32-px CIFAR-10 (kuangliu/pytorch-cifar's and the DC code's): 11,173,962 parameters;
    # instance norm has the same affine parameters as batch norm
    assert _params(build("resnet18-bn", 3, 10, 32)) == 11_173_962
    assert _params(build("resnet18", 3, 10, 32)) == 11_173_962
    # VGG-11 with batch norm for CIFAR-10 (a 512 → 10 classifier): 9,231,114
    assert _params(build("vgg11-bn", 3, 10, 32)) == 9_231_114
    # the DC code's AlexNet for 32-px 3-channel images: conv 5×5 128, 5×5 192, 3×3 256/192/192, fc 192·4·4 → 10
    convs = [(3, 128, 5), (128, 192, 5), (192, 256, 3), (256, 192, 3), (192, 192, 3)]
    expected = sum(i * o * k * k + o for i, o, k in convs) + 192 * 16 * 10 + 10
    assert _params(build("alexnet", 3, 10, 32)) == expected


def test_norms_are_as_named():
    def norms(model, kind):
        return [m for m in model.modules() if isinstance(m, kind)]

    assert norms(build("resnet18", 1, 10, 28), torch.nn.GroupNorm) and not norms(build("resnet18", 1, 10, 28),
                                                                                  torch.nn.BatchNorm2d)
    assert norms(build("resnet18-bn", 1, 10, 28), torch.nn.BatchNorm2d)
    assert all(g.num_groups == g.num_channels for g in norms(build("vgg11", 1, 10, 28), torch.nn.GroupNorm))
    convnet_bn = build("convnet-bn", 1, 10, 28, width=16)
    assert norms(convnet_bn, torch.nn.BatchNorm2d) and norms(convnet_bn, torch.nn.MaxPool2d)
    assert not norms(build("alexnet", 1, 10, 28), torch.nn.BatchNorm2d)


def test_vgg_pads_28_px_to_32_like_the_dc_code():
    first = build("vgg11", 1, 10, 28).features[0]
    assert first.padding == (3, 3)
    assert build("vgg11", 3, 10, 32).features[0].padding == (1, 1)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown architecture 'resnet99'; choose from convnet"):
        build("resnet99", 3, 10, 32)


def test_lenet_is_the_classic_size():
    # LeNet-5 on 28-px MNIST-like input: 61,706 parameters (conv 6·(25+1), conv 16·(150+1), fc 400→120→84→10)
    assert _params(build("lenet", 1, 10, 28)) == 6 * 26 + 16 * 151 + 401 * 120 + 121 * 84 + 85 * 10 == 61_706


def test_vit_tiny_has_no_convolution_and_embeds_a_4x4_grid_of_patches():
    for size, patch, tokens in [(28, 7, 16), (32, 8, 16), (64, 16, 16), (30, 8, 16), (3, 1, 9)]:
        model = build("vit-tiny", 3, 10, size)
        assert model.patch == patch and model.position.shape == (1, tokens + 1, 64)
        assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.Conv1d)) for m in model.modules())
        assert sum(isinstance(m, torch.nn.TransformerEncoderLayer) for m in model.modules()) == 4
    # a patch is embedded alone: changing pixels of one patch changes no other token's embedding
    model = build("vit-tiny", 1, 10, 28)
    x = torch.randn(1, 1, 28, 28)
    y = x.clone()
    y[0, 0, :7, :7] += 1
    patches = [torch.nn.functional.unfold(v, 7, stride=7).transpose(1, 2) for v in (x, y)]
    diff = (model.embed(patches[0]) - model.embed(patches[1])).abs().sum(-1)[0]
    assert diff[0] > 0 and diff[1:].max() == 0
