"""Charts for the portal's and console's figures, drawn on the server as inline SVG: no script and
nothing loaded from elsewhere (nodes run on closed networks). Two kinds: daily bars with an
optional threshold line, and a cumulative line against a straight pace line. Every text is
escaped; the SVG scales to the page's width (phone or desktop)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 18, 28


def _number(value: float) -> str:
    """An axis label: 2.5万, 1000万, 3亿 (the units Chinese readers count in)."""
    for unit, name in ((1e8, "亿"), (1e4, "万")):
        if value >= unit:
            return f"{value / unit:g}{name}"
    return f"{value:g}"


def _frame(title: str, top: float, parts: list[str], labels: list[tuple[float, str]]) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    grid = []
    for step in range(5):
        value = top * step / 4
        y = TOP + plot_h - plot_h * step / 4
        grid.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#57606a">{_number(value)}</text>'
        )
    ticks = "".join(
        f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#57606a">{escape(text)}</text>'
        for x, text in labels
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="xMidYMid meet" style="width:100%;height:auto;max-width:{WIDTH}px">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="12" font-size="12" fill="#1b1f24">{escape(title)}</text>'
        f"{''.join(grid)}{''.join(parts)}{ticks}</svg>"
    )


def _top(values: Sequence[float]) -> float:
    """A round top for the axis, above every value."""
    most = max([*values, 1.0])
    magnitude = 10 ** (len(str(int(most))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if most <= step * magnitude:
            return float(step * magnitude)
    return float(most)


def daily_bars(
    title: str, first: date, values: Sequence[int], colour: str = "#0b5cab", line: float | None = None
) -> Markup:
    """Bars of `values`, one a day from `first`; `line`: a threshold drawn across when it fits."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _top([*values, *([line] if line is not None else [])])
    slot = plot_w / max(len(values), 1)
    parts = []
    for n, value in enumerate(values):
        height = plot_h * value / top
        x = LEFT + n * slot + slot * 0.15
        day = (first + timedelta(days=n)).isoformat()
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - height:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" '
            f'fill="{colour}"><title>{day}: {value}</title></rect>'
        )
    if line is not None:
        y = TOP + plot_h - plot_h * line / top
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#b00020" '
            f'stroke-dasharray="6 4" stroke-width="2"/>'
        )
    every = max(1, len(values) // 6)
    labels = [
        (LEFT + n * slot + slot / 2, (first + timedelta(days=n)).strftime("%m-%d"))
        for n in range(0, len(values), every)
    ]
    return _frame(title, top, parts, labels)


def cumulative(title: str, year: int, per_day: Sequence[int], pace: float | None) -> Markup:
    """The running total of `per_day` from 1 January (one value a day so far), against the straight
    line from 0 to `pace` on 31 December when given (the threshold's pace)."""
    days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    running, total = [], 0
    for value in per_day:
        total += value
        running.append(total)
    top = _top([*running, *([pace] if pace is not None else [])])
    points = " ".join(
        f"{LEFT + plot_w * (n + 1) / days:.1f},{TOP + plot_h - plot_h * v / top:.1f}"
        for n, v in enumerate(running)
    )
    parts = [
        f'<polyline points="{LEFT},{TOP + plot_h} {points}" fill="none" stroke="#0b5cab" stroke-width="2.5"/>'
    ]
    if pace is not None:
        parts.append(
            f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h - plot_h * pace / top:.1f}" '
            f'stroke="#b00020" stroke-dasharray="6 4" stroke-width="2"/>'
        )
    months = [
        (LEFT + plot_w * (date(year, m, 1) - date(year, 1, 1)).days / days, f"{year}-{m:02d}")
        for m in (1, 4, 7, 10)
    ]
    return _frame(title, top, parts, months)
