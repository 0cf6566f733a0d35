"""Charts as inline SVG, drawn on the server (no JavaScript, nothing third-party): a line chart of values over
time and stacked bars per day. Each chart carries a title and a description for screen readers; the pages
show the same numbers in a table under it."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 28  # room for the axis labels
# Colour-blind-safe palette (Okabe-Ito), each >= 3:1 against white for graphical objects.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7a5c00", "#555555")
ACCEPTED = "#117733"


@dataclass(frozen=True)
class Series:
    """One line: a label, its colour, and (time, value) points in time order."""

    label: str
    colour: str
    points: Sequence[tuple[datetime, float]]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def _svg(title: str, description: str, body: list[str]) -> Markup:
    ident = f"c{zlib.crc32(title.encode()):08x}"  # stable, and unique per chart title on a page
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(description)}</desc>'
    )
    # Every text in `body` went through `escape`; the rest is numbers and fixed markup.
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704


def _y_axis(top: float, fmt: Callable[[float], str]) -> list[str]:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    return parts


def line_chart(
    title: str,
    series: Sequence[Series],
    fmt: Callable[[float], str] = "{:,.0f}".format,
    top: float | None = None,
) -> Markup:
    """Lines of values over time, on one shared time axis and a y axis from 0 to `top` (default: a round
    number above the largest value)."""
    points = [p for s in series for p in s.points]
    if not points:
        return _svg(
            title,
            "no data yet",
            [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">No data yet</text>'],
        )
    first = min(t for t, _ in points).timestamp()
    span = max(max(t for t, _ in points).timestamp() - first, 1.0)
    top = top or _nice_max(max(v for _, v in points))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(t: datetime, v: float) -> str:
        x = LEFT + inner_w * ((t.timestamp() - first) / span if len(points) > 1 else 0.5)
        return f"{x:.1f},{HEIGHT - BOTTOM - inner_h * v / top:.1f}"

    body = _y_axis(top, fmt)
    start, end = min(t for t, _ in points), max(t for t, _ in points)
    stamp = (
        "%Y-%m-%d" if span > 2 * 86_400 else "%Y-%m-%d %H:%M"
    )  # runs of a day or two: the hours tell them apart
    body.append(f'<text x="{LEFT}" y="{HEIGHT - 8}">{start.strftime(stamp)}</text>')
    body.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{end.strftime(stamp)}</text>')
    described = []
    for s in series:
        coords = " ".join(xy(t, v) for t, v in s.points)
        if len(s.points) > 1:
            body.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="2.5" points="{coords}"/>')
        for t, v in s.points:
            x, y = xy(t, v).split(",")
            body.append(
                f'<circle cx="{x}" cy="{y}" r="3.5" fill="{s.colour}"><title>{t:%Y-%m-%d %H:%M}: {escape(fmt(v))}</title></circle>'
            )
        if s.points:
            described.append(f"{s.label}: {fmt(s.points[0][1])} to {fmt(s.points[-1][1])}")
    return _svg(
        title, f"{len(points)} points from {start:%Y-%m-%d} to {end:%Y-%m-%d}; " + "; ".join(described), body
    )


def stacked_bars(
    title: str, days: Sequence[date], stacks: Sequence[tuple[str, str, Sequence[int]]]
) -> Markup:
    """One bar per day, stacked by (label, colour, value per day)."""
    totals = [sum(values[i] for _, _, values in stacks) for i in range(len(days))]
    if not days or not any(totals):
        return _svg(
            title,
            "no events yet",
            [f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">No events yet</text>'],
        )
    top = _nice_max(max(totals))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = inner_w / len(days)
    bar = max(2.0, min(40.0, slot * 0.7))
    body = _y_axis(top, "{:,.0f}".format)
    for i, day in enumerate(days):
        x = LEFT + slot * i + (slot - bar) / 2
        base: float = HEIGHT - BOTTOM
        for label, colour, values in stacks:
            if values[i] <= 0:
                continue
            h = inner_h * values[i] / top
            base -= h
            body.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                        f"<title>{day:%Y-%m-%d} {escape(label)}: {values[i]:,}</title></rect>")  # fmt: skip
    body.append(f'<text x="{LEFT}" y="{HEIGHT - 8}">{days[0]:%Y-%m-%d}</text>')
    body.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{days[-1]:%Y-%m-%d}</text>')
    summary = "; ".join(f"{label} {sum(values):,}" for label, _, values in stacks)
    return _svg(
        title, f"{len(days)} days from {days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}; totals: {summary}", body
    )
