import base64
import io
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

from texdistill.cli import main
from texdistill.commands import MockupConfig
from texdistill.config import DistillConfig, ExpertsConfig
from texdistill.errors import ConfigError
from texdistill.products.garments import GARMENTS, WIDTH, parse_path
from texdistill.products.mockup import (
    BACKGROUND,
    PATTERN_PAD,
    Frame,
    colour,
    fabric,
    garment_layers,
    html_fragment,
    render,
    repeat_unit,
)
from texdistill.products.textures import resample_periodic
from texdistill.stages import distill
from texdistill.stages.experts import ExpertTrainer


def random_unit(c=3, h=20, w=30, seed=0):
    return torch.randint(0, 256, (c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def tiled_by_index(tile, frame):
    """The expected fabric written independently of mockup.fabric: tile pixel ((y − top) mod h, (x − left) mod w)."""
    rows = (torch.arange(frame.height) - frame.top) % tile.shape[1]
    cols = (torch.arange(frame.width) - frame.left) % tile.shape[2]
    return tile[:, rows.view(-1, 1), cols.view(1, -1)]


def inside_and_outside(layers):
    """Pixels fully inside the fabric away from every line, and pixels untouched by fabric and lines."""
    inside = (layers.coverage == 1) & (layers.ink == 0)
    outside = (layers.coverage == 0) & (layers.ink == 0)
    return inside, outside


# ---- the rendering pipeline ------------------------------------------------------------------------
@pytest.mark.parametrize("garment", list(GARMENTS))
def test_texture_inside_the_silhouette_is_the_canvas_tiled_at_the_scale(garment):
    unit = random_unit()
    frame = Frame.centred(GARMENTS[garment], 256)
    scale = WIDTH * frame.px / 30  # a tile of exactly 30 pixels: the canvas itself, no resampling
    assert frame.period(scale) == 30
    image = render(unit, GARMENTS[garment], scale, 256, shaded=False)
    layers = garment_layers(GARMENTS[garment], frame, False)
    inside, outside = inside_and_outside(layers)
    expected = tiled_by_index(unit, frame)
    assert inside.float().mean() > 0.1
    assert torch.equal(image[:, inside], expected[:, inside])
    # tiles start at the garment's top-left corner
    assert frame.left == round((256 - WIDTH * frame.px) / 2)


@pytest.mark.parametrize("scale", [1.0, 3.3, 7.0])
def test_shaded_fabric_is_the_resampled_tiling_times_the_shading(scale):
    garment, unit = GARMENTS["dress"], random_unit(c=3, h=24, w=24, seed=1)
    frame = Frame.centred(garment, 300)
    layers = garment_layers(garment, frame)
    period = frame.period(scale)
    assert abs(period - WIDTH * frame.px / scale) <= 0.5  # `scale` tiles across the garment, to a pixel
    tile = resample_periodic(unit, (period, period)).clamp(0, 255)
    expected = (tiled_by_index(tile, frame) * layers.shade).round()
    image = render(unit, garment, scale, 300)
    inside, _ = inside_and_outside(layers)
    assert torch.equal(image[:, inside].double(), expected[:, inside])
    shade = layers.shade[inside]
    assert shade.max() <= 1 and shade.min() > 0.3 and shade.std() > 0.02  # folds and shadows, never brighter


def test_outside_the_silhouette_the_background_is_untouched():
    for garment in GARMENTS.values():
        frame = Frame.centred(garment, 200)
        layers = garment_layers(garment, frame)
        _, outside = inside_and_outside(layers)
        image = render(random_unit(seed=2), garment, 4.0, 200)
        assert outside.float().mean() > 0.2, garment.name
        background = colour(BACKGROUND, 3).round().to(torch.uint8).view(3, 1)
        assert torch.equal(image[:, outside], background.expand(3, int(outside.sum()))), garment.name


def test_silhouettes_are_anti_aliased_normalised_and_outlined():
    for garment in GARMENTS.values():
        xs = [x for points, _ in garment.polygons("outline") for x, _ in points]
        assert min(xs) == pytest.approx(0, abs=0.01) and max(xs) == pytest.approx(WIDTH, abs=0.01)
        layers = garment_layers(garment, Frame.centred(garment, 200))
        edge = (layers.coverage > 0) & (layers.coverage < 1)
        assert edge.sum() > 50, garment.name  # partial coverage along the outline: supersampled
        assert (layers.ink[edge] > 0.5).float().mean() > 0.8, garment.name  # and the outline is drawn there
        assert 0.08 < layers.coverage.mean() < 0.8, garment.name


def test_path_parser_flattens_curves_and_rejects_what_it_does_not_know():
    (points, closed), = parse_path("M 0 0 C 0 10 10 10 10 0 Z")
    assert closed and points[0] == (0, 0) and points[-1] == (10, 0)
    assert max(y for _, y in points) == pytest.approx(7.5)  # a cubic's peak: 3/4 of its control height
    with pytest.raises(ValueError):
        parse_path("M 0 0 Q 1 1 2 2")


def test_periodic_resampling_commutes_with_rolling_the_torus():
    canvas = torch.rand(2, 24, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    up = resample_periodic(canvas, (48, 48))
    assert torch.allclose(resample_periodic(torch.roll(canvas, (1, 3), (1, 2)), (48, 48)), torch.roll(up, (2, 6), (1, 2)))
    down = resample_periodic(canvas, (16, 16))  # 3 input pixels ↔ 2 output pixels
    assert torch.allclose(resample_periodic(torch.roll(canvas, 3, 2), (16, 16)), torch.roll(down, 2, 2))
    assert torch.allclose(resample_periodic(torch.full((1, 7, 9), 5.0), (11, 4)), torch.full((1, 11, 4), 5.0, dtype=torch.float64))


def test_one_channel_textures_give_one_channel_mockups():
    unit = random_unit(c=1, seed=4)
    image = render(unit, GARMENTS["tote"], 4.0, 128)
    assert image.shape == (1, 128, 128) and image.dtype == torch.uint8
    layers = garment_layers(GARMENTS["tote"], Frame.centred(GARMENTS["tote"], 128))
    inside, outside = inside_and_outside(layers)
    assert image[0][outside].unique().tolist() == [round(colour(BACKGROUND, 1).item())]
    expected = (fabric(unit, layers.frame, 4.0) * layers.shade).round()
    assert torch.equal(image[:, inside].double(), expected[:, inside])


def test_images_repeat_side_by_side():
    images = torch.stack([random_unit(c=3, h=5, w=4, seed=s) for s in range(3)])
    unit = repeat_unit(images)
    assert unit.shape == (3, 5, 12) and torch.equal(unit[:, :, 4:8], images[1])
    assert torch.equal(repeat_unit(images[:1]), images[0])  # a canvas is its own repeat unit


def test_config_checks_names_and_ranges():
    with pytest.raises(ConfigError, match="unknown garment hat"):
        MockupConfig(garments="tshirt,hat")
    with pytest.raises(ConfigError, match="--scale"):
        MockupConfig(scale=0)
    assert MockupConfig(classes=" a, b ").class_list == ["a", "b"]


# ---- on real runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def experts_dir(tmp_path_factory, demo_data):
    small = demo_data.__class__(demo_data.name, demo_data.train_images[::20], demo_data.train_labels[::20],
                                demo_data.test_images[:100], demo_data.test_labels[:100], demo_data.class_names)
    out = tmp_path_factory.mktemp("experts")
    ExpertTrainer(ExpertsConfig(out=str(out), width=4, num_experts=1, epochs=2), small).run()
    return out / "experts"


def distilled_run(path, experts_dir, **options):
    cfg = DistillConfig(out=str(path), experts_dir=str(experts_dir), width=4, iterations=1, syn_steps=2,
                        expert_epochs=1, max_start_epoch=1, **options)
    distill.run(cfg)
    return path


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory, experts_dir):
    """A (rough) texture distillation of the 1-channel demo data."""
    return distilled_run(tmp_path_factory.mktemp("gray") / "run", experts_dir, texture=True)


def test_mockup_command_on_a_grayscale_texture_run(gray_run):
    run = gray_run
    assert main(["mockup", str(run), "--classes", "sandal,bag", "--garments", "tshirt,scarf", "--size", "128"]) == 0
    names = sorted(p.name for p in (run / "mockups").iterdir())
    assert names == ["bag_scarf.png", "bag_tshirt.png", "sandal_scarf.png", "sandal_tshirt.png",
                     "sheet_scarf.png", "sheet_tshirt.png"]
    with Image.open(run / "mockups" / "bag_tshirt.png") as png:
        assert png.mode == "L" and png.size == (128, 128)
        written = torch.from_numpy(np.array(png))[None]
    with Image.open(run / "textures" / "bag.png") as png:
        canvas = torch.from_numpy(np.array(png))[None]
    assert torch.equal(written, render(canvas, GARMENTS["tshirt"], 4.0, 128))  # the run's texture, decoded
    with Image.open(run / "mockups" / "sheet_tshirt.png") as sheet:
        assert sheet.mode == "L" and sheet.size[0] > 2 * 256  # two captioned cells side by side


def test_image_mode_run_is_mocked_up_with_its_images_as_tiles(tmp_path, experts_dir):
    run = distilled_run(tmp_path / "run", experts_dir, texture=False, ipc=2)
    assert main(["mockup", str(run), "--classes", "coat", "--garments", "dress", "--size", "96"]) == 0
    assert (run / "mockups" / "coat_dress.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--garments", "hat"], "unknown garment hat"),
    (["--classes", "unicorn"], "unknown class unicorn"),
    (["--scale", "-1"], "--scale must be in"),
])
def test_bad_mockup_input_is_one_line(argv, message, gray_run, capsys):
    capsys.readouterr()
    assert main(["mockup", str(gray_run), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_mockup_of_a_folder_without_a_distillation_says_what_to_run(tmp_path, capsys):
    assert main(["mockup", str(tmp_path)]) == 2
    assert "texdistill distill --out" in capsys.readouterr().err


# ---- the report's section ------------------------------------------------------------------------
class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def all(self, tag):
        return [a for t, a in self.tags if t == tag]


def png_of(uri):
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_fragment_is_self_contained_with_a_scale_slider_and_sized_patterns():
    units = {"gray": random_unit(c=1, h=16, w=16), "colour": random_unit(c=3, h=10, w=20, seed=5)}
    page = Elements(html_fragment(units, ["tshirt", "tote"], scale=5.0))
    slider, = [a for a in page.all("input") if a.get("type") == "range"]
    assert float(slider["value"]) == 5.0 and float(slider["min"]) <= 1 and float(slider["max"]) >= 12
    patterns = page.all("pattern")
    assert len(patterns) == 2
    for pattern, unit in zip(patterns, units.values()):
        assert float(pattern["width"]) == pytest.approx(WIDTH / 5.0, abs=1e-3)
        assert float(pattern["height"]) == pytest.approx(WIDTH / 5.0 * unit.shape[1] / unit.shape[2], abs=1e-3)
    ids = {a["id"] for _, a in page.tags if "id" in a}
    references = [a["href"][1:] for a in page.all("use")] + [a["clip-path"][5:-1] for a in page.all("g")
                                                               if "clip-path" in a]
    assert references and set(references) <= ids
    assert len(page.all("svg")) == 1 + 2 * 2  # the shared definitions + a class × garment grid
    sizes = sorted(png_of(a["href"]).size for a in page.all("image") if a.get("href", "").startswith("data:"))
    pad = 2 * PATTERN_PAD
    assert (16 + pad, 16 + pad) in sizes and (20 + pad, 10 + pad) in sizes
    assert not any(a.get("src", "").startswith("http") or a.get("href", "").startswith("http") for _, a in page.tags)


# ---- in a browser (conftest's browser_page: Playwright driving Debian's chromium) ---------------------------------
def page_with_slider_at(tmp_path, fragment, value, name):
    """A page holding the fragment whose slider is moved to `value` by a user-like input event."""
    move = (f"<script>const s = document.querySelector('input.wear-scale'); s.value = '{value}';"
            f"s.dispatchEvent(new Event('input'));</script>" if value is not None else "")
    path = tmp_path / f"{name}.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><body style='margin:0'>{fragment}{move}</body>")
    return path


def test_slider_changes_the_pattern_size_in_a_browser(tmp_path, browser_page):
    fragment = html_fragment({"only": random_unit(c=3, h=12, w=12)}, ["tshirt"], scale=4.0)
    for value, width in ((None, 25.0), ("8", 12.5), ("2.5", 40.0)):
        browser_page.goto(page_with_slider_at(tmp_path, fragment, value, f"dom{value}").as_uri())
        dom = Elements(browser_page.content())  # the DOM as the page's scripts left it
        pattern, = dom.all("pattern")
        assert float(pattern["width"]) == pytest.approx(width, abs=1e-3)
        image, = [a for a in dom.all("image") if "x" in a and float(a["x"]) < 0]  # the pattern's padded image
        assert float(image["width"]) == pytest.approx(width * (12 + 2 * PATTERN_PAD) / 12, abs=1e-3)
    assert browser_page.errors == []


def stripes_across(screenshot, row):
    """Runs of red-ish vs blue-ish pixels along one screenshot row (grey background and outline skipped)."""
    pixels = screenshot.convert("RGB").load()
    runs, last = 0, None
    for x in range(screenshot.size[0]):
        r, _, b = pixels[x, row]
        kind = "r" if r > b + 40 else "b" if b > r + 40 else None
        if kind and kind != last:
            runs += 1
        last = kind or last
    return runs


@pytest.mark.parametrize("value", ["2", "6"])
def test_the_rendered_garment_shows_as_many_tiles_as_the_slider_says(tmp_path, browser_page, value):
    unit = torch.zeros(3, 8, 8, dtype=torch.uint8)
    unit[0, :, :4] = 220  # left half red, right half blue: two stripes per tile
    unit[2, :, 4:] = 220
    fragment = html_fragment({"stripes": unit}, ["tote"], scale=4.0)
    browser_page.set_viewport_size({"width": 600, "height": 600})
    browser_page.goto(page_with_slider_at(tmp_path, fragment, value, "shot").as_uri())
    with Image.open(io.BytesIO(browser_page.screenshot())) as screenshot:
        rows = [stripes_across(screenshot, y) for y in range(0, 600, 5)]
    # the tote body is the full garment width: 2 stripes per tile, `value` tiles (the edge stripes may be cut)
    assert max(rows) == pytest.approx(2 * float(value), abs=1), rows
