import base64
import io
import json
import os
import re
import shutil
import xml.dom.minidom
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from texdistill.method.setfile import load_result
from texdistill.products import report


class Links(HTMLParser):
    """Every URL a page refers to: src/href attributes and url(…) in style attributes and <style>."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href", "srcset", "poster", "data"):
                self.urls.append(value)
            elif key == "style":
                self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", value)

    def handle_data(self, data):
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", data)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    head, payload = uri.split(",", 1)
    assert head.startswith("data:") and head.endswith(";base64"), head[:60]
    return head[5:-7], base64.b64decode(payload)


def test_report_is_self_contained_and_complete(texture_run):
    run = texture_run
    page = (run / "report.html").read_text()
    links = Links()
    links.feed(page)
    # nothing to fetch: every image is a data URI, every other reference points into the page itself
    assert links.urls and all(url.startswith(("data:", "#")) for url in links.urls)
    links.urls = [url for url in links.urls if url.startswith("data:")]
    snapshots = len(list((run / "snapshots").glob("it_*.safetensors")))
    kinds = {}
    for url in links.urls:
        mime, data = decode_data_uri(url)
        kinds[mime] = kinds.get(mime, 0) + 1
        if mime == "image/svg+xml":
            xml.dom.minidom.parseString(data)  # well-formed, or the browser shows a broken image
        else:
            image = Image.open(io.BytesIO(data))
            image.load()
            assert image.format == {"image/png": "PNG", "image/gif": "GIF"}[mime]
            if mime == "image/gif":
                assert image.n_frames == snapshots
    # per class: CSS tile + canvas + 3×3 + evolution strip (PNG; the "Wear it" section adds its own), the
    # animation (GIF); 3 plots (SVG: training curves, accuracy, wearability)
    assert kinds["image/png"] >= 40 and kinds["image/gif"] == 10 and kinds["image/svg+xml"] == 3
    _, meta, _ = load_result(run)
    results = json.loads((run / "eval.json").read_text())
    for name in meta["class_names"]:
        assert f"<h3>{name}</h3>" in page and f"<tr><td>{name}</td>" in page
    assert 'id="wear-it"' in page
    for name, s in results["sets"].items():
        spread = "" if s["std"] is None else f" ± {100 * s['std']:.2f}"  # one model: no ±
        assert f"<td>{name}</td><td>{100 * s['mean']:.2f}{spread}</td>" in page
        assert f"{results['seams'][name]['classes']['bag']['ratio']:.2f}" in page
    wear = results["wearability"]["sets"]
    assert set(wear) == set(results["sets"]) and 'id="wearability-table"' in page
    for name, w in wear.items():  # the mean over classes, ± over the judge networks when there are several
        spread = f" ± {w['std']:.2f} (n = {w['judges_n']})" if w.get("judges_n", 1) > 1 else ""
        assert f"<td><b>{w['mean']:.2f}</b>{spread}</td>" in page


def test_report_of_an_image_run(image_run):
    page = report.build(image_run)
    assert "synthetic images distilled from fashion-demo" in page and "Not evaluated yet" in page
    assert "images/bag.png" in page and "first image ×5" in page  # 28-px images shown ×5 (≥ 128 px)
    assert page.count('class="tiling"') == 10


def test_report_in_headless_chromium(texture_run, browser_page, tmp_path):
    run = texture_run
    _, meta, _ = load_result(run)
    page = browser_page
    page.goto((run / "report.html").as_uri())  # waits for the load event
    state = page.evaluate("""async () => {
        const images = [...document.images];
        await Promise.all(images.map(img => img.decode().catch(() => null)));
        const tiles = [...document.querySelectorAll('.tiling')].map(el => {
            const style = getComputedStyle(el), box = el.getBoundingClientRect();
            return {image: style.backgroundImage, repeat: style.backgroundRepeat,
                    x: box.left + scrollX + el.clientLeft, y: box.top + scrollY + el.clientTop,
                    width: el.clientWidth, height: el.clientHeight,
                    tileWidth: +el.dataset.tileWidth, tileHeight: +el.dataset.tileHeight};
        });
        return {images: images.length, broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).length,
                tiles, title: document.title};
    }""")
    screenshot = page.screenshot(full_page=True)  # page pixels: CSS px at device scale 1
    (tmp_path / "report.png").write_bytes(screenshot)
    if os.environ.get("TEXDISTILL_SCREENSHOT"):
        shutil.copy(tmp_path / "report.png", os.environ["TEXDISTILL_SCREENSHOT"])
    assert page.errors == []
    first = state["tiles"][0]
    margin = 4  # the box may sit at a fractional offset: take a little more and align below
    top, left = int(first["y"]) - margin, int(first["x"]) - margin
    full = np.asarray(Image.open(io.BytesIO(screenshot)).convert("RGB")).astype(int)
    shot = full[top:top + int(first["height"]) + 2 * margin, left:left + int(first["width"]) + 2 * margin]

    assert state["images"] == 43 and state["broken"] == 0, state  # per class 3 PNG + 1 GIF; 3 plots
    assert len(state["tiles"]) == len(meta["class_names"])
    assert all(t["repeat"] == "repeat" and t["image"].startswith('url("data:image/png;base64,') for t in state["tiles"])
    # the tiled element paints the run's own canvas, repeated: compare with the canvas enlarged and tiled
    _, png = decode_data_uri(state["tiles"][0]["image"][5:-2])
    canvas = np.asarray(Image.open(io.BytesIO(png)))
    assert np.array_equal(canvas, np.asarray(Image.open(run / "textures" / f"{meta['class_names'][0]}.png")))
    scale = first["tileWidth"] // canvas.shape[1]
    assert scale * canvas.shape[1] == first["tileWidth"] and first["width"] > 2 * first["tileWidth"]
    h, w = int(first["height"]) - 2, int(first["width"]) - 2
    ys, xs = np.arange(h), np.arange(w)
    expected = canvas[(ys // scale % canvas.shape[0])[:, None], (xs // scale % canvas.shape[1])[None, :]]
    best = min((np.abs(shot[dy:dy + h, dx:dx + w, 0] - expected).mean(), dy, dx)
               for dy in range(2 * margin) for dx in range(2 * margin))
    assert best[0] < 1.0, best  # the browser shows the texture tiled, pixel for pixel
    assert np.abs(shot[..., 0] - shot[..., 1]).max() <= 2  # a grey texture stays grey


def test_report_flags_an_evaluation_of_an_older_set(texture_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(texture_run / "synthetic.safetensors", run)  # no snapshots, no log: the report still builds
    results = json.loads((texture_run / "eval.json").read_text())
    results["iteration"] -= 5
    results["seams"]["distilled"]["classes"]["bag"]["ratio"] = 123.0  # measured on the older set
    (run / "eval.json").write_text(json.dumps(results))
    page = report.build(run)
    assert f"Evaluated at iteration {results['iteration']}" in page and "No distillation log lines yet" in page
    assert "123.00" not in page  # the distilled set's seams are measured afresh


def test_a_live_report_reloads_itself_and_the_final_one_does_not(texture_run):
    run = texture_run
    live = report.build(run, live=True)
    assert '<meta http-equiv="refresh" content="30">' in live and 'id="live"' in live
    final = (run / "report.html").read_text()  # written by the pipeline when the run ended
    assert "http-equiv" not in final and 'id="live"' not in final


@pytest.mark.parametrize("low, high, expected", [(0.0018, 0.0026, ["0.002", "0.0025"]),  # within one decade
                                                 (2e-4, 0.011, ["0.001", "0.01"])])    # the decades
def test_log_axis_has_labelled_ticks_even_within_one_decade(low, high, expected):
    import re

    from texdistill.products.svgplot import line_chart

    svg = line_chart([0, 1, 2], {"η": [high, (low + high) / 2, low]}, "iteration", "η", "η", log_y=True).decode()
    labels = re.findall(r'text-anchor="end"[^>]*>([^<]+)</text>', svg)  # the y-axis labels
    assert labels == expected


def test_legend_sits_above_the_plot_not_on_its_lines():
    import re

    from texdistill.products.svgplot import line_chart

    series = {"matching loss": [1.2, 1.0, 0.9], "recognition cross-entropy": [3.0, 1.5, 1.0]}
    svg = line_chart([0, 1, 2], series, "iteration", "loss", "loss").decode()
    plot_top = float(re.search(r'<rect x="[\d.]+" y="([\d.]+)"[^>]*fill="none"', svg).group(1))
    for name in series:
        y = float(re.search(rf'<text x="[\d.]+" y="([\d.]+)"[^>]*>{name}</text>', svg).group(1))
        assert y < plot_top  # the text's baseline is above the plot frame
    line_ys = [float(v) for points in re.findall(r'points="([^"]+)"', svg) for v in re.findall(r',([\d.]+)', points)]
    assert min(line_ys) >= plot_top
