"""An SVG chart of req/s and p99 against concurrency, drawn by hand (no plotting library)."""
from __future__ import annotations

import math
from html import escape

COLOURS = ("#6b7280", "#2563eb", "#ea580c", "#16a34a", "#9333ea")
PANEL_W, PANEL_H = 420, 300
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 16, 36, 44


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _panel(x0: float, title: str, concurrency: list[int], series: list[tuple[str, list[float | None]]],
           *, log_y: bool, unit: str) -> list[str]:
    plot_w = PANEL_W - MARGIN_L - MARGIN_R
    plot_h = PANEL_H - MARGIN_T - MARGIN_B
    values = [v for _, points in series for v in points if v is not None and v > 0]
    if log_y:
        low = 10 ** math.floor(math.log10(min(values))) if values else 1.0
        high = 10 ** math.ceil(math.log10(max(values))) if values else 10.0
        high = max(high, low * 10)
        ticks = []
        tick = low
        while tick <= high * 1.0001:
            ticks.append(tick)
            tick *= 10

        def y_of(v: float) -> float:
            return MARGIN_T + plot_h * (1 - (math.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low)))
    else:
        high = _nice_ceiling(max(values) * 1.05 if values else 1.0)
        ticks = [high * i / 5 for i in range(6)]

        def y_of(v: float) -> float:
            return MARGIN_T + plot_h * (1 - v / high)

    def x_of(i: int) -> float:
        return MARGIN_L + plot_w * (i / (len(concurrency) - 1) if len(concurrency) > 1 else 0.5)

    out = [f'<g transform="translate({x0},0)">',
           f'<text x="{PANEL_W / 2}" y="20" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    for tick in ticks:
        y = y_of(tick)
        label = f"{tick:,.0f}" if tick >= 1 else f"{tick:g}"
        out.append(f'<line x1="{MARGIN_L}" x2="{PANEL_W - MARGIN_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{MARGIN_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>')
    for i, c in enumerate(concurrency):
        x = x_of(i)
        out.append(f'<text x="{x:.1f}" y="{PANEL_H - MARGIN_B + 16}" text-anchor="middle" font-size="11">{c}</text>')
    out.append(f'<text x="{MARGIN_L + plot_w / 2}" y="{PANEL_H - 8}" text-anchor="middle" font-size="11">'
               f'connections (wrk)</text>')
    out.append(f'<text x="14" y="{MARGIN_T + plot_h / 2}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 14 {MARGIN_T + plot_h / 2})">{escape(unit)}</text>')
    out.append(f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>')
    for (label, points), colour in zip(series, COLOURS):
        coords = [(x_of(i), y_of(v)) for i, v in enumerate(points) if v is not None and v > 0]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in coords:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
    out.append("</g>")
    return out


def render(title: str, concurrency: list[int], rps: dict[str, list[float | None]],
           p99_ms: dict[str, list[float | None]]) -> str:
    """Two panels, req/s (linear) and p99 in ms (log), one line per request kind."""
    width = 2 * PANEL_W
    height = PANEL_H + 28
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    parts += _panel(0, "requests per second", concurrency, list(rps.items()), log_y=False, unit="req/s")
    parts += _panel(PANEL_W, "p99 latency", concurrency, list(p99_ms.items()), log_y=True, unit="ms (log scale)")
    x = MARGIN_L
    for (label, _), colour in zip(rps.items(), COLOURS):
        parts.append(f'<rect x="{x}" y="{PANEL_H + 8}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="{PANEL_H + 18}" font-size="12">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    parts.append(f'<text x="{width - 8}" y="{PANEL_H + 18}" text-anchor="end" font-size="10" fill="#6b7280">'
                 f'{escape(title)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
