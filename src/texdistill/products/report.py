"""`texdistill report RUN` → RUN/report.html: one self-contained page (every image a data URI, opens offline).

It reads only files of the run folder: synthetic.safetensors, snapshots/, log.jsonl, eval.json.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from functools import partial
from pathlib import Path

from texdistill._version import __version__
from texdistill.commands import ReportConfig
from texdistill.method.evaluate import seam_report
from texdistill.method.setfile import load_result
from texdistill.method.torus import VISIBLE
from texdistill.products import mockup
from texdistill.products.export import evolution, evolution_strip
from texdistill.products.svgplot import bar_chart, line_chart
from texdistill.stages.evaluate import EVAL_FILE
from texdistill.storage import atomic_write_bytes, gif_bytes, png_bytes, read_json, read_jsonl

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
STRIP_FRAMES = 8
ANIMATION_FRAMES = 30  # snapshots in each embedded animation at most (keeps the page small)
TILE_MIN_PX = 128  # CSS tiles are shown enlarged by an integer factor to at least this side
PREVIEW_MAX_PX = 360  # previews are enlarged by the same factor, but not beyond this width

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.meta { color: #555; } .note { color: #555; font-size: 0.9em; max-width: 55em; }
table { border-collapse: collapse; margin: 0.8em 0; } th, td { padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { border-bottom: 1px solid #999; }
tbody tr:nth-child(odd) { background: #f4f4f4; }
img { max-width: 100%; image-rendering: pixelated; }
.class { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; margin: 1.2em 0; }
.class h3 { margin: 0 0 0.5em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
td.visible { color: #b00; font-weight: bold; }
.tiling { width: 420px; height: 280px; max-width: 100%; background-repeat: repeat; image-rendering: pixelated;
          resize: both; overflow: hidden; border: 1px solid #999; }
"""


def data_uri(data: bytes, mime: str) -> str:
    """Bytes as a base64 data: URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_tag(data: bytes, mime: str, alt: str, caption: str, width: int | None = None) -> str:
    """An embedded image with a caption (shown `width` CSS pixels wide when given)."""
    size = f' width="{width}"' if width else ""
    return (f'<figure><img src="{data_uri(data, mime)}" alt="{html.escape(alt)}"{size}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def training_plot(records: list[dict]) -> bytes | None:
    """Loss and student lr η against iteration, from the distill lines of log.jsonl (two SVG panels side by side)."""
    records = [r for r in records if "loss" in r and "it" in r and "skipped" not in r]
    if not records:
        return None
    its = [r["it"] for r in records]
    series = {"matching loss": [r["loss"] for r in records]}
    if any("recognition" in r for r in records):
        series["recognition cross-entropy"] = [r.get("recognition", float("nan")) for r in records]
    loss = line_chart(its, series, "iteration", "loss", "trajectory-matching loss")
    lr = line_chart(its, {"η": [r["syn_lr"] for r in records]}, "iteration", "η", "learned student lr η (syn_lr)",
                    log_y=True)
    return side_by_side(loss, lr)


def side_by_side(*svgs: bytes) -> bytes:
    """Standalone SVGs placed in one row, as one SVG (each nested <svg> keeps its viewBox, moved right)."""
    width, height, body = 0, 0, ""
    for svg in svgs:
        text = svg.decode()
        head, rest = text[:text.index(">")], text[text.index(">"):]
        w, h = (int(head.split(f' {key}="')[1].split('"')[0]) for key in ("width", "height"))
        body += f'<svg x="{width}" y="0" width="{w}" height="{h}" viewBox="0 0 {w} {h}"' + rest
        width, height = width + w, max(height, h)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{body}</svg>').encode()


def accuracy_plot(sets: dict, split: str = "test") -> bytes:
    """Bar chart of test (or validation) accuracy (mean ± sample std over models) per evaluated set."""
    return bar_chart({n: 100 * s["mean"] for n, s in sets.items()}, f"{split} accuracy (%)", f"{split} accuracy",
                     errors={n: None if s["std"] is None else 100 * s["std"] for n, s in sets.items()},
                     highlight="distilled", x_max=100)


def _mean_std(s: dict) -> str:
    return f"{100 * s['mean']:.2f}" + ("" if s["std"] is None else f" ± {100 * s['std']:.2f}")


def cross_architecture_table(results: dict) -> str:
    """Accuracy of every evaluated set on every other architecture (rows) — empty without --models."""
    others = results.get("architectures") or {}
    if not others:
        return ""
    sets = list(dict.fromkeys([*results.get("sets", {}), *(n for table in others.values() for n in table)]))
    rows = {"convnet (distillation's)": results.get("sets", {}), **others}
    head = "".join(f"<th>{html.escape(n)}</th>" for n in sets)
    body = "".join(f"<tr><td>{html.escape(arch)}</td>" + "".join(
        f"<td>{_mean_std(table[n]) if n in table else ''}</td>" for n in sets) + "</tr>" for arch, table in rows.items())
    split = "Validation" if results.get("split") == "val" else "Test"
    return (f"<p class=note>{split} accuracy (%) of networks of each architecture trained on each set (mean ± sample "
            f"std over {results['config'].get('num_models')} models): does the set carry over to architectures "
            f"that took no part in its distillation?</p><table id=\"cross-architecture-table\"><thead><tr>"
            f"<th>architecture</th>{head}</tr></thead><tbody>{body}</tbody></table>")


def accuracy_section(results: dict | None, iteration: int) -> str:
    if not results or not results.get("sets"):
        return "<p>Not evaluated yet: run <code>texdistill evaluate</code> on this folder.</p>"
    if results.get("iteration") != iteration:
        stale = (f"<p class=note>Evaluated at iteration {results.get('iteration')}; the set is now at iteration "
                 f"{iteration}: run <code>texdistill evaluate</code> again.</p>")
    else:
        stale = ""
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{_mean_std(s)}</td><td>{s['models']}</td>"
                   f"<td>{s['lr']:.3g}</td></tr>" for name, s in results["sets"].items())
    status = "" if results.get("complete") else "<p class=note>Evaluation still in progress.</p>"
    split = "validation" if results.get("split") == "val" else "test"  # evaluate --split; test before there was one
    return (f'{stale}{status}{cross_architecture_table(results)}<table id="accuracy-table"><thead><tr><th>set</th>'
            f"<th>{split} accuracy (%)</th><th>models</th><th>lr</th></tr></thead><tbody>{rows}</tbody></table>"
            + figure_tag(accuracy_plot(results["sets"], split), "image/svg+xml", "accuracy plot",
                         "mean ± sample std (n − 1) over independently trained ConvNets"))


def wearability_section(wear: dict | None, names: list[str]) -> str:
    """Per set and class: the share of random (wrap-around) crops the independent judges recognise."""
    if not wear or not wear.get("sets"):
        return "<p>Not measured: run <code>texdistill evaluate</code> (with judges) on this folder.</p>"
    sets = wear["sets"]
    judges = ", ".join(f"{html.escape(j)} ({100 * v['test_accuracy']:.1f} % on the real test images)"
                       for j, v in wear.get("judges", {}).items())
    head = "".join(f"<th>{html.escape(s)}</th>" for s in sets)
    body = "".join(f"<tr><td>{html.escape(c)}</td>" + "".join(
        f"<td{' class=visible' if sets[s]['classes'][c] < 0.5 else ''}>{sets[s]['classes'][c]:.2f}</td>" for s in sets)
        + "</tr>" for c in names)
    body += "<tr><td><b>mean</b></td>" + "".join(
        f"<td><b>{sets[s]['mean']:.2f}</b>" + (f" ± {sets[s]['std']:.2f} (n = {sets[s]['judges_n']})"
                                                if sets[s].get("judges_n", 1) > 1 else "") + "</td>" for s in sets) + "</tr>"
    chart = bar_chart({s: w["mean"] for s, w in sets.items()}, "share of crops recognised as their class",
                      "wearability (mean over classes)", highlight="distilled", x_max=1.0)
    return (f"<p class=note>The share of uniformly random crops (textures: wrap-around crops of the canvas, seams "
            f"included; image sets: the images) that networks trained only on the real data, never used by the "
            f"distillation, classify as their class — averaged over the judges {judges} (±: sample std over the judges). "
            f"Red: below 0.5.</p>"
            + figure_tag(chart, "image/svg+xml", "wearability chart", "mean over classes and judges")
            + f'<table id="wearability-table"><thead><tr><th>class</th>{head}</tr></thead><tbody>{body}</tbody></table>')


LOOK_COLUMNS = {"ratio": ("ratio", 2), "z": ("z", 1), "edge_z": ("edges z", 1), "tile_edge_z": ("tile z", 1)}


def seam_section(seams: dict, names: list[str]) -> str:
    sets = list(seams)
    keys = {s: [k for k in LOOK_COLUMNS if k in seams[s]] for s in sets}
    head = "".join(f'<th colspan="{len(keys[s])}">{html.escape(s)}</th>' for s in sets)
    sub = "<th></th>" + "".join(f"<th>{LOOK_COLUMNS[k][0]}</th>" for s in sets for k in keys[s])
    body = ""
    for cls in [*names, None]:
        cells = ""
        for s in sets:
            values = seams[s]["classes"][cls] if cls else seams[s]
            for key in keys[s]:
                mark = ' class="visible"' if values[key] > VISIBLE[key] else ""
                cells += f"<td{mark}>{values[key]:.{LOOK_COLUMNS[key][1]}f}</td>"
        body += f"<tr><td>{html.escape(cls) if cls else '<b>mean</b>'}</td>{cells}</tr>"
    speckled = [s for s in sets if "speckle" in seams[s]]
    speckle = ("" if not speckled else '<table id="speckle-table"><thead><tr><th></th>'
               + "".join(f"<th>{html.escape(s)}</th>" for s in speckled) + "</tr></thead><tbody><tr><td>speckle</td>"
               + "".join(f"<td>{seams[s]['speckle']:.2f}</td>" for s in speckled) + "</tr></tbody></table>")
    return (f'<table id="seam-table"><thead><tr><th>class</th>{head}</tr><tr>{sub}</tr></thead>'
            f"<tbody>{body}</tbody></table>" + speckle)


def class_section(label: int, name: str, synthetic, space, seams: dict, evolution_frames) -> str:
    """One class: the live CSS tiling, the previews, the evolution strip and animation, its seam metrics."""
    to_uint8 = partial(synthetic.displayable, space)
    unit = to_uint8(synthetic.class_pixels(label))[0]  # what is tiled: the canvas, or the first image
    scale = math.ceil(TILE_MIN_PX / min(unit.shape[1:]))
    tiling = (f'<figure><div class="tiling" role="img" aria-label="{html.escape(name)} tiled" '
              f'data-tile-width="{unit.shape[2] * scale}" data-tile-height="{unit.shape[1] * scale}" '
              f'style="background-image: url({data_uri(png_bytes(unit), "image/png")}); '
              f'background-size: {unit.shape[2] * scale}px {unit.shape[1] * scale}px"></div>'
              f"<figcaption>live CSS tiling ({'canvas' if synthetic.periodic else 'first image'} ×{scale}; "
              f"drag the corner to resize)</figcaption></figure>")

    def zoomed(image) -> int:  # shown width: enlarged like the tiling (pixelated, integer zoom), within bounds
        return max(1, min(scale, PREVIEW_MAX_PX // image.shape[2])) * image.shape[2]

    figures = [tiling]
    for relative, image in synthetic.previews(label, name, to_uint8).items():
        figures.append(figure_tag(png_bytes(image), "image/png", relative, relative, width=zoomed(image)))
    iterations, frames = evolution_frames
    if iterations:
        strip = evolution_strip(iterations, frames[label], STRIP_FRAMES)
        figures.append(figure_tag(png_bytes(strip), "image/png", f"{name} evolution",
                                  "evolution over the distillation (snapshots)"))
        figures.append(figure_tag(gif_bytes(frames[label]), "image/gif", f"{name} animation", "the same, animated",
                                  width=zoomed(frames[label][0])))
    metrics = " · ".join(f"{html.escape(s)}: ratio {v['classes'][name]['ratio']:.2f}, z {v['classes'][name]['z']:.1f}"
                         for s, v in seams.items())
    return (f'<article class="class" id="class-{label}"><h3>{html.escape(name)}</h3>'
            f'<div class="row">{"".join(figures)}</div><p class="note">seams — {metrics}</p></article>')


LIVE_REFRESH_S = 30  # a report written while the run goes on reloads itself this often


def build(run_dir: str | Path, live: bool = False) -> str:
    """The report of a run folder as one HTML string; `live`: written while the run goes on, so the page
    reloads itself every LIVE_REFRESH_S seconds and says so."""
    run_dir = Path(run_dir)
    synthetic, meta, space = load_result(run_dir)
    names = meta["class_names"]
    results = read_json(run_dir / EVAL_FILE) if (run_dir / EVAL_FILE).exists() else None
    seams = dict((results or {}).get("seams", {}))
    if not seams or results.get("iteration") != meta["iteration"]:  # missing, or measured on an older set
        seams.update(seam_report({"distilled": [synthetic]}, space, names))
    records = read_jsonl(run_dir / "log.jsonl", stage="distill")
    plot = training_plot(records)
    frames = evolution(run_dir, synthetic, ANIMATION_FRAMES)
    what = "tileable textures (one canvas per class)" if synthetic.periodic else "synthetic images"
    banner = (f'<p class="note" id="live">The run is still going (iteration {meta["iteration"]}): this page reloads '
              f"every {LIVE_REFRESH_S} s; the final version replaces it when the run ends.</p>" if live else "")
    sections = [
        f"<h1>texdistill report</h1>{banner}<p class=meta>{html.escape(str(run_dir))}: {what} distilled from "
        f"{html.escape(meta['dataset'])}, iteration {meta['iteration']}, learned η = {meta['syn_lr']:.4g}.</p>",
        "<h2>Accuracy</h2>" + accuracy_section(results, meta["iteration"]),
        "<h2>Wearability</h2>" + wearability_section((results or {}).get("wearability"), names),
        "<h2>Seams</h2><p class=note><b>ratio</b>: mean absolute difference across the wrap-around seams "
        "(last → first column and row) ÷ the same between neighbouring interior columns and rows; ≈ 1 means the "
        "seam is statistically invisible, ≫ 1 a visible edge. <b>z</b>: how many standard deviations the mean "
        "difference across the stronger seam lies above that of the interior lines; |z| ≲ 3 is invisible. "
        "<b>edges z</b>: the strongest straight edge anywhere on a canvas, across any row or column, in robust "
        "z-units (median, 1.4826·MAD) of all other lines; <b>tile z</b>: the same only where a collage's blocks "
        "meet (multiples of the crop side). <b>speckle</b>: the share of spectral power above half Nyquist in "
        "random crops ÷ that share in real images of the data set (≈ 1: as fine-grained as real pictures). "
        f"Red: ratio &gt; {VISIBLE['ratio']} or a z &gt; {VISIBLE['z']:g}. Baselines are measured on the real images "
        "they are made of (tiled), averaged over the draws the evaluation trained on.</p>"
        + seam_section(seams, names),
        "<h2>Distillation</h2>" + (figure_tag(plot, "image/svg+xml", "training curves", "from log.jsonl")
                                   if plot else "<p>No distillation log lines yet.</p>"),
        "<h2>Classes</h2>" + "".join(class_section(label, name, synthetic, space, seams, frames)
                                     for label, name in enumerate(names)),
        mockup.html_section(run_dir),
        f"<footer class=note>texdistill {__version__}; built only from the files of this run folder.</footer>",
    ]
    refresh = f'<meta http-equiv="refresh" content="{LIVE_REFRESH_S}">' if live else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{refresh}<title>texdistill report — '
            f"{html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def run(cfg: ReportConfig, live: bool = False) -> Path:
    """Write RUN/report.html; returns its path (`live`: see build)."""
    path = Path(cfg.run) / REPORT_FILE
    atomic_write_bytes(path, build(cfg.run, live).encode("utf-8"))
    if not live:
        log.info("report: %s", path)
    return path
