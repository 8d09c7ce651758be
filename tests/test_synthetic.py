import pytest
import torch

from texdistill.method.initial import collage
from texdistill.method.synthetic import (
    ImageSet,
    TextureCanvas,
    build_synthetic,
    from_state,
    on_own_class,
    wrap_crops,
)


def numbered_canvas(k=2, c=1, h=6, w=8):
    return torch.arange(k * c * h * w, dtype=torch.float64).view(k, c, h, w)


def test_crop_near_the_edge_is_the_concatenation_of_the_right_pieces():
    canvas = numbered_canvas()
    crop = wrap_crops(canvas, torch.tensor([1]), torch.tensor([4]), torch.tensor([6]), (4, 5))[0, 0]
    c = canvas[1, 0]
    # rows 4,5,0,1 and columns 6,7,0,1,2: four pieces of the canvas glued across both seams
    top = torch.cat([c[4:6, 6:8], c[4:6, 0:3]], dim=1)
    bottom = torch.cat([c[0:2, 6:8], c[0:2, 0:3]], dim=1)
    assert torch.equal(crop, torch.cat([top, bottom], dim=0))
    # the same as rolling the canvas and taking the top-left crop
    assert torch.equal(crop, torch.roll(c, shifts=(-4, -6), dims=(0, 1))[:4, :5])


def test_every_canvas_pixel_is_covered_equally_often():
    canvas = TextureCanvas(torch.zeros(1, 1, 12, 10), torch.arange(1), 1, (5, 4), canvas_samples=1)
    counts = torch.zeros(12, 10)
    for seed in range(6000):
        d = canvas.draw(seed)
        rows = (d.dy + torch.arange(5)) % 12
        cols = (d.dx + torch.arange(4)) % 10
        counts[rows.view(-1, 1), cols.view(1, -1)] += 1
    expected = 6000 * 5 * 4 / 120
    assert (counts / expected - 1).abs().max() < 0.08, counts / expected
    # crops straddling a seam are as likely as any other: offsets are uniform over the whole canvas
    offsets = torch.stack([torch.cat([canvas.draw(s).dy, canvas.draw(s).dx]) for s in range(3000)])
    assert (offsets[:, 0] > 12 - 5).float().mean().item() == pytest.approx(4 / 12, abs=0.03)


def test_gradient_of_a_crop_loss_reaches_both_sides_of_a_seam():
    canvas = TextureCanvas(torch.zeros(1, 1, 8, 8), torch.arange(1), 1, (4, 4))
    draw = canvas.draw(0)
    draw.dy[:], draw.dx[:] = 6, 6  # the crop covers rows/cols 6,7,0,1
    images, _ = canvas.take(draw)
    images.sum().backward()
    grad = canvas.pixels.grad[0, 0]
    assert grad[6:8, 6:8].sum() == 4 and grad[0:2, 0:2].sum() == 4 and grad[6:8, 0:2].sum() == 4
    assert grad.sum() == 16 and grad[2:6].sum() == 0


def test_same_seed_same_draw():
    canvas = TextureCanvas(torch.randn(3, 1, 10, 10), torch.arange(3), 3, (5, 5), canvas_samples=2)
    a, b = canvas.draw(42), canvas.draw(42)
    assert torch.equal(a.dy, b.dy) and torch.equal(a.dx, b.dx)
    assert torch.equal(canvas.sample(42)[0], canvas.sample(42)[0])
    images, labels = canvas.sample(1)
    assert images.shape == (6, 1, 5, 5) and labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_image_set_batches():
    images = ImageSet(torch.randn(6, 1, 4, 4), torch.tensor([0, 0, 1, 1, 2, 2]), 3)
    x, y = images.sample(0)
    assert torch.equal(x, images.pixels) and y.tolist() == [0, 0, 1, 1, 2, 2]
    subset = ImageSet(images.pixels.detach(), images.labels, 3, batch=4)
    assert len(subset.sample(0)[0]) == 4 and torch.equal(subset.sample(5)[0], subset.sample(5)[0])


def test_real_inits_for_images_and_non_integer_canvases(demo_data, demo_space):
    g = torch.Generator().manual_seed(0)
    images = build_synthetic(False, "real", demo_data, demo_space, g, ipc=2)
    assert images.pixels.shape == (20, 1, 28, 28) and images.labels.tolist()[:4] == [0, 0, 1, 1]
    textures = build_synthetic(True, "real", demo_data, demo_space, g, canvas_size=1.5, canvas_samples=3)
    assert textures.pixels.shape == (10, 1, 42, 42) and textures.sample(0)[0].shape == (30, 1, 28, 28)
    tiled = build_synthetic(True, "real-tiled", demo_data, demo_space, g, canvas_size=2)
    assert torch.equal(tiled.pixels[:, :, :28, :28], tiled.pixels[:, :, 28:, 28:])
    noise = build_synthetic(True, "noise", demo_data, demo_space, g)
    assert abs(noise.pixels.std() - 1) < 0.05


def test_collage_lays_images_row_by_row():
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    out = collage(images, (3, 5))
    assert out.shape == (1, 3, 5)
    assert out[0, 0].tolist() == [0, 0, 1, 1, 2] and out[0, 2].tolist() == [3, 3, 0, 0, 1]


def test_state_round_trip():
    canvas = TextureCanvas(torch.randn(2, 3, 9, 7), torch.arange(2), 2, (5, 5), canvas_samples=2)
    rebuilt = from_state(canvas.settings(), canvas.state_tensors())
    assert isinstance(rebuilt, TextureCanvas) and torch.equal(rebuilt.sample(3)[0], canvas.sample(3)[0])


def test_on_own_class_swaps_the_top_logit_with_the_label_s():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    assert on_own_class(logits, torch.tensor([2, 1])).tolist() == [[2.0, 1.0, 3.0], [0.0, 5.0, 1.0]]
    assert logits[0, 0] == 3.0  # the input is left alone
