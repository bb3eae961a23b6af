"""Small charts drawn on the server as inline SVG: bars (messages archived a day) and a
line (storage over time). No script, no style attribute (the pages' CSP allows neither):
shapes carry classes that static/style.css colours, and each point a <title> that the
browser shows on hover. Values are escaped like any other text of a page."""
from __future__ import annotations

import math
from html import escape
from typing import Callable

from markupsafe import Markup

WIDTH, HEIGHT = 760, 190
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 26
# Grid lines for each nice top value's first digit: steps of 0.2, 0.5, 0.5, 1, 2 of it.
GRID_LINES = {1: 5, 2: 4, 2.5: 5, 5: 5}


def count_text(value: float) -> str:
    """A count on an axis: 12,345, or 2.5 where a step is not whole."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def bar_chart(points: list[tuple[str, float]], label: str,
              value_text: Callable[[float], str] = count_text) -> Markup:
    """Bars of `points` ((x label, value), in order); `label` names the chart for screen
    readers. An empty list gives an empty chart saying "no data"."""
    top, parts = _frame(points, label, value_text)
    if not points:
        return _svg(label, parts)
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    for index, (name, value) in enumerate(points):
        height = _y_span(value, top)
        x, y = LEFT + index * slot, HEIGHT - BOTTOM - height
        parts.append(f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{y:.1f}" '
                     f'width="{max(slot * 0.8, 1):.1f}" height="{height:.1f}">'
                     f'<title>{escape(name)}: {escape(value_text(value))}</title></rect>')
    return _svg(label, parts)


def line_chart(points: list[tuple[str, float]], label: str,
               value_text: Callable[[float], str] = count_text) -> Markup:
    """A line through `points` ((x label, value), in order), the area under it shaded."""
    top, parts = _frame(points, label, value_text)
    if not points:
        return _svg(label, parts)
    step = (WIDTH - LEFT - RIGHT) / max(len(points) - 1, 1)
    coordinates = [(LEFT + index * step, HEIGHT - BOTTOM - _y_span(value, top))
                   for index, (_, value) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    base = HEIGHT - BOTTOM
    parts.append(f'<polygon class="area" points="{coordinates[0][0]:.1f},{base} {line} '
                 f'{coordinates[-1][0]:.1f},{base}"/>')
    parts.append(f'<polyline class="line" points="{line}"/>')
    for (x, y), (name, value) in zip(coordinates, points):
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                     f'<title>{escape(name)}: {escape(value_text(value))}</title></circle>')
    return _svg(label, parts)


def _frame(points, label: str, value_text) -> tuple[float, list[str]]:
    """The chart's scale (its top value) and its axes, grid lines and labels."""
    parts = []
    top = _nice_top(max((value for _, value in points), default=0))
    lines = GRID_LINES[float(f"{top:e}".split("e")[0])]
    for line in range(lines + 1):
        value = top * line / lines
        y = HEIGHT - BOTTOM - _y_span(value, top)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{escape(value_text(value))}</text>')
    if not points:
        parts.append(f'<text class="axis" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" '
                     'text-anchor="middle">no data</text>')
        return top, parts
    shown = sorted({0, len(points) // 2, len(points) - 1})
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    for index in shown:
        x = LEFT + (index + 0.5) * slot
        anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
        parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" '
                     f'text-anchor="{anchor}">{escape(points[index][0])}</text>')
    return top, parts


def _svg(label: str, parts: list[str]) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{escape(label)}</title>{"".join(parts)}</svg>')


def _y_span(value: float, top: float) -> float:
    return (HEIGHT - TOP - BOTTOM) * (value / top if top else 0)


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value` (1 for 0)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)
