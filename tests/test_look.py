"""The seamless real start (--init quilt) and the look metrics: straight edges anywhere and speckle."""

import math

import pytest
import torch

from texdistill.method.evaluate import look_line
from texdistill.method.initial import collage
from texdistill.method.quilt import cheapest_path, keep_old, quilt, window_starts
from texdistill.method.torus import edge_metrics, high_frequency_share, robust_z


def smooth_torus(side: int, seed: int) -> torch.Tensor:
    """(side, side): a few random low-frequency waves, periodic."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(side).double(), torch.arange(side).double(), indexing="ij")
    field = torch.zeros(side, side, dtype=torch.float64)
    for _ in range(6):
        fy, fx = torch.randint(1, 5, (2,), generator=g).tolist()
        field += torch.cos(2 * math.pi * (fy * y + fx * x) / side + 6.28 * float(torch.rand(1, generator=g)))
    return field


def patches_of(source: torch.Tensor, count: int, size: int, seed: int) -> torch.Tensor:
    """(count, 1, size, size) windows of a torus at random offsets: images of one texture."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.randint(source.shape[0], (count, 2), generator=g).tolist()
    return torch.stack([source.roll((-a, -b), (0, 1))[:size, :size] for a, b in offsets]).unsqueeze(1)


@pytest.mark.parametrize("side, patch", [(56, 28), (28, 28), (42, 28), (128, 64)])
def test_windows_cover_the_circle_with_overlaps(side, patch):
    starts = window_starts(side, patch)
    steps = [b - a for a, b in zip(starts, [*starts[1:], starts[0] + side])]  # the last one wraps to the first
    assert starts[0] == 0 and len(starts) >= 2
    assert max(steps) <= patch * 2 / 3 + 1 and min(steps) > 0


def test_cheapest_path_follows_the_valley():
    errors = torch.ones(6, 5, dtype=torch.float64)
    valley = [1, 2, 3, 3, 2, 1]
    for r, c in enumerate(valley):
        errors[r, c] = 0
    assert cheapest_path(errors).tolist() == valley
    keep = keep_old(errors, "left", 5)
    assert keep[0].tolist() == [True, False, False, False, False]  # left of the cut keeps what was there
    assert keep_old(errors.T.contiguous(), "top", 5).T[0].tolist() == keep[0].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_quilt_of_one_texture_has_no_straight_edges_where_a_collage_has(seed):
    images = patches_of(smooth_torus(64, seed), 40, 16, seed)
    quilted = quilt(images, (32, 32), torch.Generator().manual_seed(seed))
    assert quilted.shape == (1, 32, 32)
    ours, blocks = edge_metrics(quilted, (16, 16)), edge_metrics(collage(images, (32, 32)), (16, 16))
    assert ours["tile_edge_z"] < 3 < 6 < blocks["tile_edge_z"]  # where the blocks meet: invisible vs an edge
    assert ours["edge_z"] < blocks["edge_z"] / 2  # the cuts' blends leave much weaker lines than block edges


def test_a_quilt_is_made_of_the_images_pixels():
    images = torch.stack([torch.full((1, 8, 8), float(v)) for v in range(5)])
    quilted = quilt(images, (16, 16), torch.Generator().manual_seed(0))
    assert quilted.min() >= 0 and quilted.max() <= 4  # blends of the images, nothing new


def test_edges_anywhere_and_at_tile_borders():
    canvas = smooth_torus(48, 3).unsqueeze(0)
    assert max(edge_metrics(canvas, (16, 16)).values()) < 3
    stepped = canvas.clone()
    stepped[:, :, 20:] += 3.0  # a straight vertical edge at column boundary 19 and the wrap seam
    metrics = edge_metrics(stepped, (16, 16))
    assert metrics["edge_z"] > 10 and metrics["tile_edge_z"] > 10  # the wrap seam is a tile border too
    mid = canvas.clone()
    mid[:, :, 24:40] += 3.0  # edges at 23 and 39: off the tile borders 15, 31, 47
    assert edge_metrics(mid, (16, 16))["edge_z"] > 10 > edge_metrics(mid, (16, 16))["tile_edge_z"]


def test_robust_z_survives_identical_lines():
    lines = torch.tensor([0.0] * 30 + [0.1, 0.2, 5.0], dtype=torch.float64)  # a black background: MAD = 0
    z = robust_z(lines)
    assert torch.isfinite(z).all() and z[-1] == z.max() and z[-1] > 10


def test_speckle_share_of_white_noise_and_of_a_smooth_image():
    noise = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    area_above = 1 - math.pi * 0.25 ** 2  # the share of the (periodic) frequency square beyond radius 1/4
    assert high_frequency_share(noise) == pytest.approx(area_above, abs=0.02)
    assert high_frequency_share(smooth_torus(32, 0)[None, None]) < 1e-6


def test_look_line_says_visible_from_the_numbers():
    clean = {"ratio": 1.02, "z": 0.4, "edge_z": 2.1, "tile_edge_z": 1.5, "speckle": 1.01}
    assert look_line("distilled", clean).endswith("no visible edge")
    assert look_line("distilled", {**clean, "tile_edge_z": 9.0}).endswith("edges visible")
    assert look_line("random real ×4", {"ratio": 8.71, "z": 12.7}).endswith("edges visible")


def test_a_quilt_of_pictures_on_a_background_keeps_their_content():
    # half the pool is background only, half carries an object: a quilt that picked the patch agreeing best with
    # the overlap would fill the canvas with background; random picks keep about the pool's share of content
    images = torch.ones(40, 1, 16, 16)
    images[::2, :, 4:12, 4:12] = 0.0
    content = [float((quilt(images, (32, 32), torch.Generator().manual_seed(seed)) < 0.5).float().mean())
               for seed in range(5)]
    pool = float((images < 0.5).float().mean())  # 0.125
    assert sum(content) / len(content) > 0.5 * pool
