import pytest
import torch
import torch.nn.functional as F

from texdistill.method.torus import random_rolls, seam_metrics, seam_ratio, seam_verdict, seam_zscore, tile, wrap_crops
from texdistill.products.textures import periodic_resample_matrix, resample_periodic
from texdistill.products.wang import E, N, S, W, render_wang, tile_set, wang_layout, wang_tiles


def smooth_torus(channels=1, size=48, blur=1.0, seed=0) -> torch.Tensor:
    """A random smooth periodic image (C, size, size): white noise low-passed in the Fourier domain."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(channels, size, size, generator=g, dtype=torch.float64)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    gain = torch.exp(-2 * (torch.pi * blur) ** 2 * (f.view(-1, 1) ** 2 + f.view(1, -1) ** 2))
    field = torch.fft.ifft2(torch.fft.fft2(noise) * gain).real
    return (field - field.mean()) / field.std()


def natural_image(size=48, seed=0) -> torch.Tensor:
    """A smooth but non-periodic image (1, size, size), like a photo: a window of a larger field plus a light ramp."""
    field = smooth_torus(1, 4 * size, blur=3.0, seed=seed)[:, :size, :size]
    ramp = torch.linspace(0, 1, size, dtype=torch.float64)
    return field + ramp.view(1, 1, -1) + 0.5 * ramp.view(1, -1, 1)


def test_any_canvas_sized_window_of_the_3x3_tiling_is_the_canvas_rolled():
    canvas = torch.randn(2, 5, 7)
    tiled = tile(canvas, 3, 3)
    assert tiled.shape == (2, 15, 21)
    for dy in range(2 * 5 + 1):
        for dx in range(2 * 7 + 1):
            window = tiled[:, dy:dy + 5, dx:dx + 7]
            assert torch.equal(window, torch.roll(canvas, shifts=(-dy, -dx), dims=(1, 2)))
            # the training crops see the very same torus
            crop = wrap_crops(canvas.unsqueeze(0), torch.tensor([0]), torch.tensor([dy]), torch.tensor([dx]), (5, 7))
            assert torch.equal(window, crop[0])


@pytest.mark.parametrize("seed", range(4))
def test_seam_of_a_rolled_smooth_torus_is_invisible(seed):
    torus = smooth_torus(size=64, seed=seed)
    ratios = []
    for dy in range(0, 64, 3):
        for dx in range(0, 64, 5):
            rolled = torch.roll(torus, (dy, dx), dims=(1, 2))
            ratios.append(seam_ratio(rolled))
            # a seam is one sample of the line-to-line spread of the texture (±30 % here): ≈1, not exactly 1
            assert 0.6 < ratios[-1] < 1.5
            assert seam_zscore(rolled) < 3.5
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("seed", range(4))
def test_seam_of_a_tiled_natural_image_is_visible(seed):
    image = natural_image(seed=seed)
    assert seam_ratio(image) > 3
    assert seam_zscore(image) > 10
    # the same image made periodic (mirrored to a torus) is seamless again: the metric sees the seam, not the content
    mirrored = torch.cat([image, image.flip(2)], dim=2)
    mirrored = torch.cat([mirrored, mirrored.flip(1)], dim=1)
    assert seam_ratio(mirrored) < 1.0


def test_seam_metrics_average_over_units():
    units = torch.stack([smooth_torus(seed=1), natural_image(seed=1)])
    metrics = seam_metrics(units)
    assert metrics["ratio"] == pytest.approx((seam_ratio(units[0]) + seam_ratio(units[1])) / 2)
    assert metrics["z"] == pytest.approx((seam_zscore(units[0]) + seam_zscore(units[1])) / 2)


def test_resampling_matrix_is_a_wrapped_partition_of_unity():
    for n_in, n_out in ((8, 8), (8, 37), (30, 7), (4, 100)):
        matrix = periodic_resample_matrix(n_in, n_out)
        assert matrix.shape == (n_out, n_in)
        assert torch.allclose(matrix.sum(dim=1), torch.ones(n_out, dtype=torch.float64))
    assert torch.allclose(periodic_resample_matrix(9, 9), torch.eye(9, dtype=torch.float64))


@pytest.mark.parametrize("seed", range(3))
def test_print_upsampling_keeps_the_seam_invisible(seed):
    canvas = smooth_torus(1, 24, blur=1.5, seed=seed)
    up = resample_periodic(canvas, (101, 101))  # a non-integer factor, as for a print size in cm at some dpi
    assert seam_ratio(up) == pytest.approx(seam_ratio(canvas), rel=0.15) and seam_zscore(up) < 3.0
    # a resize that does not know the canvas wraps (edge-clamped bicubic) leaves a visible seam
    naive = F.interpolate(canvas.unsqueeze(0), size=(101, 101), mode="bicubic", align_corners=False)[0]
    assert seam_ratio(naive) > 2 * seam_ratio(up) and seam_zscore(naive) > 3.0


def test_wang_tile_set_offers_two_choices_for_every_north_west_pair():
    edges = tile_set(2)
    assert len(edges) == 8 and len({tuple(e) for e in edges.tolist()}) == 8
    for n in range(2):
        for w in range(2):
            fits = edges[(edges[:, N] == n) & (edges[:, W] == w)]
            assert len(fits) == 2 and fits[0, S] != fits[1, S] and fits[0, E] != fits[1, E]
    assert len(tile_set(3)) == 18


def test_wang_tiling_edges_match_in_colour_and_are_pixel_continuous():
    canvas = smooth_torus(3, 40, blur=2.0, seed=5)
    tiles = wang_tiles(canvas, colors=2, size=16, generator=torch.Generator().manual_seed(1))
    layout = wang_layout(tiles, 9, 11, torch.Generator().manual_seed(2))
    image = render_wang(tiles, layout)
    t, half, (_, h, w) = 16, 8, canvas.shape
    inner = torch.arange(1, t - 1)  # the two end pixels of an edge are the corners, shared by two edges
    for i in range(9):
        for j in range(11):
            if j + 1 < 11:  # the vertical edge between (i, j) and (i, j + 1)
                color = tiles.edges[layout[i, j], E]
                assert color == tiles.edges[layout[i, j + 1], W]
                y, x = (int(v) for v in tiles.sources[1, color])
                rows = (y - half + inner) % h
                left, right = image[:, i * t + inner, (j + 1) * t - 1], image[:, i * t + inner, (j + 1) * t]
                # either side of the edge: two neighbouring columns of the canvas, as in the texture itself
                assert torch.allclose(left, canvas[:, rows, (x - 1) % w]) and torch.allclose(right, canvas[:, rows, x])
            if i + 1 < 9:  # the horizontal edge between (i, j) and (i + 1, j)
                color = tiles.edges[layout[i, j], S]
                assert color == tiles.edges[layout[i + 1, j], N]
                y, x = (int(v) for v in tiles.sources[0, color])
                cols = (x - half + inner) % w
                above, below = image[:, (i + 1) * t - 1, j * t + inner], image[:, (i + 1) * t, j * t + inner]
                assert torch.allclose(above, canvas[:, (y - 1) % h, cols]) and torch.allclose(below, canvas[:, y, cols])
    # the tiling is not periodic: no row or column shift maps the layout onto itself
    for p in range(1, 5):
        assert not torch.equal(layout[:, p:], layout[:, :-p]) and not torch.equal(layout[p:], layout[:-p])
    # and across tile borders (corners included) it is as smooth as the canvas is between neighbours
    steps = (image[:, :, 1:] - image[:, :, :-1]).abs()
    border = steps[:, :, t - 1::t].mean()
    assert border < 1.5 * (canvas - torch.roll(canvas, 1, dims=2)).abs().mean()


def test_wang_options_are_checked():
    from texdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="--wang-colors"):
        wang_tiles(smooth_torus(), colors=1)
    with pytest.raises(ConfigError, match="--wang-tile"):
        wang_tiles(smooth_torus(size=20), size=30)


def test_random_rolls_roll_each_image_with_wrap_around_or_leave_it():
    images = torch.randn(6, 2, 4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(random_rolls(images, 0.0, torch.Generator().manual_seed(1)), images)
    rolled = random_rolls(images, 1.0, torch.Generator().manual_seed(1))
    shifts = []
    for original, out in zip(images, rolled):
        found = [(dy, dx) for dy in range(4) for dx in range(5)
                 if torch.equal(torch.roll(original, (-dy, -dx), dims=(1, 2)), out)]
        assert len(found) == 1  # a wrap-around roll of its own image, nothing else
        shifts.append(found[0])
    assert len(set(shifts)) > 1  # each image its own offset


def test_the_seam_verdict_follows_the_numbers():
    assert seam_verdict(1.02, -0.4) == "invisible" and seam_verdict(1.5, 3.0) == "invisible"
    assert seam_verdict(8.71, 12.7) == "visible"  # what the log used to call invisible by its legend
    assert seam_verdict(1.2, 4.1) == "visible" and seam_verdict(1.9, 0.5) == "visible"
