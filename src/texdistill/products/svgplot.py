"""Small SVG charts for the report, written directly (no plotting library needed: the report works after a
plain `pip install`). Each function returns the bytes of one standalone SVG document."""

from __future__ import annotations

import html
import math

FONT = 'font-family="system-ui, sans-serif" font-size="11"'
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#7f7f7f")


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1.0
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Ticks of a log axis spanning log10 values [low, high]: the decades, or round values where it spans less
    than two decades (η often moves within one)."""
    decades = [10.0 ** e for e in range(math.floor(low), math.ceil(high) + 1) if low <= e <= high]
    if len(decades) >= 2:
        return decades
    return [t for t in _nice_ticks(10 ** low, 10 ** high, count=4) if t > 0]


def _label(value: float) -> str:
    return f"{value:.3g}"


def _document(width: int, height: int, body: str, title: str) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{html.escape(title)}</title>'
            f'<rect width="100%" height="100%" fill="white"/>{body}</svg>').encode()


def line_chart(x: list[float], series: dict[str, list[float]], xlabel: str, ylabel: str, title: str,
               log_y: bool = False, width: int = 420, height: int = 240) -> bytes:
    """One panel: each named series of y values against x (log-scaled y with `log_y`)."""
    legend = len(series) > 1  # a row of names between the title and the plot, so it never covers a line
    left, right, top, bottom = 58, 12, 38 if legend else 24, 40
    values = [v for ys in series.values() for v in ys if math.isfinite(v) and (not log_y or v > 0)]
    if not x or not values:
        return _document(width, height, f'<text x="10" y="20" {FONT}>no data</text>', title)
    transform = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    y_low, y_high = transform(min(values)), transform(max(values))
    pad = 0.05 * ((y_high - y_low) or 1.0)
    y_low, y_high = y_low - pad, y_high + pad
    x_low, x_high = min(x), max(x) if max(x) > min(x) else min(x) + 1

    def px(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * (width - left - right)

    def py(v: float) -> float:
        return top + (y_high - transform(v)) / (y_high - y_low) * (height - top - bottom)

    parts = [f'<text x="{width / 2}" y="15" text-anchor="middle" {FONT} font-weight="bold">{html.escape(title)}</text>']
    y_ticks = _log_ticks(y_low, y_high) if log_y else _nice_ticks(y_low, y_high)
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_label(tick)}</text>')
    for tick in _nice_ticks(x_low, x_high):
        parts.append(f'<text x="{px(tick):.1f}" y="{height - bottom + 14}" text-anchor="middle" {FONT}>'
                     f'{_label(tick)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
                 f'fill="none" stroke="#999"/>')
    for i, (name, ys) in enumerate(series.items()):
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, ys) if math.isfinite(b) and (not log_y or b > 0))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{COLORS[i % len(COLORS)]}" stroke-width="1.5">'
                     f'<title>{html.escape(name)}</title></polyline>')
    x_legend = left
    for i, name in enumerate(series if legend else ()):
        color = COLORS[i % len(COLORS)]
        parts.append(f'<line x1="{x_legend}" x2="{x_legend + 14}" y1="{top - 10}" y2="{top - 10}" stroke="{color}" '
                     f'stroke-width="2"/><text x="{x_legend + 18}" y="{top - 6}" fill="{color}" {FONT}>'
                     f'{html.escape(name)}</text>')
        x_legend += 30 + 6 * len(name)  # ~6 px per character at font size 11
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle" {FONT}>'
                 f'{html.escape(xlabel)}</text>')
    parts.append(f'<text transform="translate(13 {(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle" '
                 f'{FONT}>{html.escape(ylabel)}</text>')
    return _document(width, height, "".join(parts), title)


def bar_chart(bars: dict[str, float], xlabel: str, title: str, errors: dict[str, float | None] | None = None,
              highlight: str | None = None, x_max: float | None = None, width: int = 560) -> bytes:
    """Horizontal bars (one per name, top to bottom), optional ± error whiskers; `highlight` in green."""
    left, right, top, row = 190, 20, 24, 22
    height = top + row * len(bars) + 34
    x_max = x_max or max([*bars.values(), 1e-9]) * 1.1

    def px(v: float) -> float:
        return left + max(0.0, min(v, x_max)) / x_max * (width - left - right)

    parts = [f'<text x="{width / 2}" y="15" text-anchor="middle" {FONT} font-weight="bold">{html.escape(title)}</text>']
    for tick in _nice_ticks(0, x_max):
        parts.append(f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{top}" y2="{top + row * len(bars)}" '
                     f'stroke="#ddd"/><text x="{px(tick):.1f}" y="{top + row * len(bars) + 13}" text-anchor="middle" '
                     f'{FONT}>{_label(tick)}</text>')
    for i, (name, value) in enumerate(bars.items()):
        y = top + row * i + 3
        color = "#2ca02c" if name == highlight else "#8c8c8c"
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end" {FONT}>{html.escape(name)}</text>'
                     f'<rect x="{left}" y="{y}" width="{px(value) - left:.1f}" height="{row - 6}" fill="{color}">'
                     f'<title>{html.escape(name)}: {value:.3g}</title></rect>')
        error = (errors or {}).get(name)
        if error:
            a, b, mid = px(value - error), px(value + error), y + (row - 6) / 2
            parts.append(f'<path d="M{a:.1f} {mid:.1f}H{b:.1f}M{a:.1f} {mid - 4:.1f}v8M{b:.1f} {mid - 4:.1f}v8" '
                         f'stroke="black"/>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" text-anchor="middle" {FONT}>'
                 f'{html.escape(xlabel)}</text>')
    return _document(width, height, "".join(parts), title)
