"""Small SVG charts drawn on the server for the dashboard: no script, no library, no CDN.

Each function returns markup safe to put in the page (every text in it is escaped here): a
chart with a y axis of round numbers, a label for every few days, and a ``<title>`` on each
mark so a pointer shows the exact figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 400, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 24
MAX_LABELS = 7

Series = tuple[str, str, Sequence[float | None]]  # name, colour, one value a day


def nice_max(value: float, *, counts: bool = False) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``; for counts at
    least 4, so that the axis's five ticks are whole numbers."""
    if counts:
        return 4 * max(1.0, nice_max(value / 4))
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover


@dataclass(frozen=True)
class _Frame:
    days: Sequence[str]
    top: float
    unit: str

    @property
    def plot_w(self) -> float:
        return WIDTH - LEFT - RIGHT

    @property
    def plot_h(self) -> float:
        return HEIGHT - TOP - BOTTOM

    def x(self, index: float) -> float:
        return LEFT + self.plot_w * (index + 0.5) / max(1, len(self.days))

    def y(self, value: float) -> float:
        return TOP + self.plot_h * (1 - value / self.top)

    def slot(self) -> float:
        return self.plot_w / max(1, len(self.days))

    def axes(self) -> list[str]:
        parts = []
        for i in range(5):
            value = self.top * i / 4
            y = self.y(value)
            parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
                         f'y2="{y:.1f}"/>')
            parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                         f'text-anchor="end">{escape(_fmt(value, self.unit))}</text>')
        every = max(1, math.ceil(len(self.days) / MAX_LABELS))
        for i, day in enumerate(self.days):
            if (len(self.days) - 1 - i) % every == 0:  # the latest day always has its label
                parts.append(f'<text class="tick" x="{self.x(i):.1f}" y="{HEIGHT - 8}" '
                             f'text-anchor="middle">{escape(day[5:])}</text>')
        return parts


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0f}%"
    if unit == "s":
        return f"{value:.1f} s" if value < 10 and value % 1 else f"{value:.0f} s"
    return f"{value:.0f}"


def _svg(label: str, parts: list[str], legend: Sequence[tuple[str, str]]) -> Markup:
    keys = "".join(f'<span class="key"><i style="background:{escape(colour)}"></i>'
                   f"{escape(name)}</span>" for name, colour in legend)
    return Markup(f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="'
                  f'{escape(label)}">{"".join(parts)}</svg><div class="legend">{keys}</div>')


def stacked_bars(label: str, days: Sequence[str], series: Sequence[Series], *,
                 unit: str = "") -> Markup:
    """One bar a day, its series stacked (e.g. syncs ok, refused, stopped)."""
    totals = [sum(float(s[2][i] or 0) for s in series) for i in range(len(days))]
    frame = _Frame(days, nice_max(max(totals, default=0), counts=not unit), unit)
    parts = frame.axes()
    width = min(28.0, frame.slot() * 0.7)
    for i, day in enumerate(days):
        base = 0.0
        for name, colour, values in series:
            value = float(values[i] or 0)
            if value <= 0:
                continue
            y_top, y_base = frame.y(base + value), frame.y(base)
            parts.append(f'<rect x="{frame.x(i) - width / 2:.1f}" y="{y_top:.1f}" '
                         f'width="{width:.1f}" height="{max(0.5, y_base - y_top):.1f}" '
                         f'fill="{escape(colour)}"><title>{escape(day)}: {value:g} '
                         f'{escape(name)}</title></rect>')
            base += value
    return _svg(label, parts, [(name, colour) for name, colour, _ in series])


def lines(label: str, days: Sequence[str], series: Sequence[Series], *,
          unit: str = "") -> Markup:
    """A line a series (gaps where a day has no value), a dot on each day's value."""
    values = [float(v) for _, _, vs in series for v in vs if v is not None]
    frame = _Frame(days, nice_max(max(values, default=0)), unit)
    parts = frame.axes()
    for name, colour, points in series:
        run: list[str] = []
        for i, value in enumerate([*points, None]):
            if value is None:
                if len(run) > 1:
                    parts.append(f'<polyline fill="none" stroke="{escape(colour)}" '
                                 f'stroke-width="2" points="{" ".join(run)}"/>')
                run = []
                continue
            x, y = frame.x(i), frame.y(float(value))
            run.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{escape(colour)}">'
                         f"<title>{escape(days[i])}: {escape(_fmt(float(value), unit))} "
                         f"{escape(name)}</title></circle>")
    return _svg(label, parts, [(name, colour) for name, colour, _ in series])
