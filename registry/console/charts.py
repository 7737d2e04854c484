"""Charts as inline SVG, drawn on the server.

Why no chart library: the console must work printed, offline and with no CDN, and its charts
are a few lines and bars per page. Server-side SVG needs no JavaScript, prints crisply, and
every number drawn is the same number shown in the table or CSV next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Series", "bar_chart", "line_chart"]

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 24, 36
PALETTE = ("#1f5fa8", "#c2410c", "#15803d", "#6b7280", "#7c3aed")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    dashed: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = float(10 ** (len(str(int(value))) - 1))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _fmt(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(title: str, labels: Sequence[str], top: float, unit: str) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="{LEFT}" y="14" class="chart-title">{escape(title)} ({escape(unit)})</text>',
    ]
    for i in range(5):
        y = TOP + plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{_fmt(top * (4 - i) / 4)}</text>"
        )
    n = len(labels)
    step = max(1, n // 6)
    for i in range(0, n, step):
        x = _x(i, n)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" class="axis" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    return parts


def _x(i: int, n: int) -> float:
    plot_w = WIDTH - LEFT - RIGHT
    return LEFT + (plot_w * (i + 0.5) / n if n else 0)


def _y(value: float, top: float) -> float:
    plot_h = HEIGHT - TOP - BOTTOM
    return TOP + plot_h * (1 - value / top)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str) -> Markup:
    """Lines over shared labels; a None value breaks its line."""
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = _nice_max(peak)
    parts = _frame(title, labels, top, unit)
    n = len(labels)
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append(f"{_x(i, n):.1f},{_y(v, top):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} '
                    f'points="{" ".join(run)}"/>'
                )
        lx = LEFT + 8 + 190 * k
        parts.append(f'<rect x="{lx}" y="{HEIGHT - 14}" width="10" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{HEIGHT - 9}" class="legend">{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text in it went through escape)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], unit: str) -> Markup:
    top = _nice_max(max(values, default=0.0))
    parts = _frame(title, labels, top, unit)
    n = len(labels)
    plot_w = WIDTH - LEFT - RIGHT
    width = max(1.0, plot_w / max(n, 1) * 0.7)
    for i, v in enumerate(values):
        y = _y(v, top)
        parts.append(
            f'<rect x="{_x(i, n) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(labels[i])}: {_fmt(v)}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text in it went through escape)
