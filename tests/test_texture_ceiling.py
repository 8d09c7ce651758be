"""benchmarks/texture_ceiling.py: the forms in which it shows real images as texture crops."""

import torch

from scripts import benchmark_script

ceiling = benchmark_script("texture_ceiling")


def test_rolled_images_are_wrap_around_rolls_of_themselves():
    images = torch.arange(8 * 5 * 6, dtype=torch.float64).view(8, 1, 5, 6)
    out = ceiling.in_form("rolled", images, torch.zeros(8), images, torch.zeros(8), torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    for image, shown in zip(images, out):
        rolls = [torch.roll(image, (-dy, -dx), dims=(1, 2)) for dy in range(5) for dx in range(6)]
        assert sum(torch.equal(shown, r) for r in rolls) == 1  # every value distinct: exactly one roll matches


def test_collage_crops_show_only_their_class_and_their_image_a_quarter_of_the_time():
    # pool image i is filled with the value i; classes 0 and 1 alternate
    pool = torch.arange(10, dtype=torch.float64).view(10, 1, 1, 1).repeat(1, 1, 4, 4)
    pool_labels = torch.arange(10) % 2
    index = torch.arange(10).repeat(40)
    out = ceiling.collage_crops(pool[index], pool_labels[index], pool, pool_labels, torch.Generator().manual_seed(0))
    assert out.shape == (400, 1, 4, 4)
    values = out.flatten(1).long()
    assert (values % 2 == pool_labels[index].unsqueeze(1)).all()  # every pixel from an image of the crop's class
    # the crop's own image fills one tile of four, and each of the other three tiles is it again with chance 1/5:
    # expected share of its pixels 1/4 + 3/4 · 1/5 = 0.40
    own = (values == index.unsqueeze(1)).double().mean()
    assert abs(own - 0.40) < 0.05


def test_centred_is_the_images_themselves():
    images = torch.rand(3, 1, 4, 4)
    assert ceiling.in_form("centred", images, torch.zeros(3), images, torch.zeros(3), torch.Generator()) is images
