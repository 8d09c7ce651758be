import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from texdistill.cli import main
from texdistill.method.setfile import load_result
from texdistill.method.torus import seam_ratio, seam_zscore
from texdistill.products.wang import E, N, S, W


def read(path) -> np.ndarray:
    return np.array(Image.open(path))


@pytest.fixture(scope="module")
def exported(texture_run, tmp_path_factory):
    """A copy of conftest's texture run (the demo-quick pipeline), exported with every product."""
    run = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(texture_run, run, ignore=shutil.ignore_patterns("experts", "checkpoint.safetensors"))
    assert main(["export", str(run), "--tiles", "2x3", "--print", "--size-cm", "2", "--dpi", "300",
                 "--wang", "--wang-grid", "5"]) == 0
    return run


def test_previews_and_contact_sheet(exported):
    _, meta, _ = load_result(exported)
    for name in meta["class_names"]:
        canvas = read(exported / "textures" / f"{name}.png")
        assert canvas.shape == (56, 56)
        assert np.array_equal(read(exported / "textures" / f"{name}_2x3.png"), np.tile(canvas, (2, 3)))
    sheet = read(exported / "contact_sheet.png")
    assert sheet.shape[1] > 5 * 3 * 56 and sheet.std() > 10  # five classes a row, each tiled 3 wide


def test_evolution_strip_and_animation_show_the_snapshots(exported):
    snapshots = sorted((exported / "snapshots").glob("it_*.safetensors"))
    assert len(snapshots) == 5  # iterations 0, 5, …, 20
    canvas = read(exported / "textures" / "bag.png")
    gif = Image.open(exported / "evolution" / "bag.gif")
    assert gif.n_frames == len(snapshots)
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("L"))
    assert last.shape == (168, 168) and np.array_equal(last[::3, ::3], canvas)  # the final canvas, enlarged ×3
    gif.seek(0)
    assert not np.array_equal(np.asarray(gif.convert("L"))[::3, ::3], canvas)  # the canvas changed meanwhile
    strip = read(exported / "evolution" / "bag.png")
    assert strip.shape[1] >= len(snapshots) * 96


def test_print_tile_has_its_dpi_and_stays_seamless(exported):
    tile_path = exported / "print" / "coat_2cm_300dpi.png"
    image = Image.open(tile_path)
    assert image.size == (236, 236)  # 2 cm at 300 dpi
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    canvas = torch.from_numpy(read(exported / "textures" / "coat.png")).float().unsqueeze(0)
    printed = torch.from_numpy(np.array(image)).float().unsqueeze(0)
    # resampled on the torus: the seam stays as (in)visible as the canvas's (a line-to-line spread, not a step)
    assert seam_ratio(printed) == pytest.approx(seam_ratio(canvas), abs=0.25) and seam_zscore(printed) < 3
    swatch = Image.open(exported / "print" / "coat_2cm_300dpi_swatch_2x3.png")
    assert swatch.width / swatch.info["dpi"][0] * 2.54 == pytest.approx(3 * 2, rel=0.01)  # 3 repeats of 2 cm
    swatch_px = np.asarray(swatch)
    assert np.array_equal(swatch_px[:, : swatch.width // 3], swatch_px[:, swatch.width // 3: 2 * swatch.width // 3])


def test_wang_products_match_their_layout(exported):
    layout_file = json.loads((exported / "wang" / "sandal_layout.json").read_text())
    edges, layout, size = layout_file["edges_nesw"], layout_file["layout"], layout_file["tile_size"]
    assert len(edges) == 8 and size == 28 and len(layout) == 5
    for i in range(5):
        for j in range(5):
            if j < 4:
                assert edges[layout[i][j]][E] == edges[layout[i][j + 1]][W]
            if i < 4:
                assert edges[layout[i][j]][S] == edges[layout[i + 1][j]][N]
    assert read(exported / "wang" / "sandal_tiling.png").shape == (5 * 28, 5 * 28)
    assert (exported / "wang" / "sandal_tiles.png").exists()


def test_print_and_wang_need_a_texture_run(image_run, capsys):
    assert main(["export", str(image_run), "--print"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "need a texture run" in err[0]
    assert main(["export", str(image_run)]) == 0  # previews and evolution work for images too
    assert (image_run / "images" / "bag_3x3.png").exists() and (image_run / "evolution" / "bag.gif").exists()


@pytest.mark.parametrize("argv, message", [(["--tiles", "3by3"], "--tiles must look like 3x3"),
                                           (["--dpi", "0"], "--dpi must be > 0"),
                                           (["--size-cm", "500"], "over 20000 px")])
def test_bad_export_options_are_one_line(texture_run, argv, message, capsys):
    assert main(["export", str(texture_run), *argv]) == 2
    assert message in capsys.readouterr().err


def test_export_of_a_missing_run_says_so(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "texdistill distill" in capsys.readouterr().err
