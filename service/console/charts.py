"""Line charts as inline SVG, drawn on the server: no script, no library, no external asset
(the console must work where the browser reaches nothing but ``cre serve``)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from html import escape
from typing import Optional

# six slots, six colours that stay apart for the common colour blindnesses (Okabe-Ito)
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
_BAND, _BAND_OPACITY = "#009E73", 0.18  # an expected range, translucent behind the lines
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 720, 220, 64, 110, 28, 30
# a range drawn behind the lines: (low, high), None for a side left open
Band = tuple[Optional[float], Optional[float]]


def line_chart(title: str, days: Sequence[datetime.date],
               series: Mapping[str, Sequence[Optional[float]]], unit: str = "",
               percent: bool = False, band: Optional[Band] = None) -> str:
    """One line per series over ``days`` (a value per day, None where there is none: the
    line breaks there); ``band``, a range drawn behind them (low, high; None leaves that side
    open to the plot's edge), such as what a value was expected within."""
    bottom, top = _y_range([value for found in series.values() for value in found
                            if value is not None], band)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(index: int) -> float:
        return _LEFT + index * step

    def y(value: float) -> float:
        return _TOP + plot_h * (top - value) / (top - bottom)

    def label(value: float) -> str:
        return f"{value:.1%}" if percent else f"{value:,.0f}{unit}" if abs(value) >= 10 \
            else f"{value:.2g}{unit}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {_WIDTH} {_HEIGHT}" aria-label="{escape(title)}">',
             f'<text x="{_LEFT}" y="16" class="chart-title">{escape(title)}</text>']
    for fraction in (0, 0.5, 1):
        at = bottom + (top - bottom) * fraction
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(at):.1f}" '
                     f'y2="{y(at):.1f}" class="grid"/>'
                     f'<text x="{_LEFT - 6}" y="{y(at) + 4:.1f}" '
                     f'text-anchor="end">{escape(label(at))}</text>')
    low, high = band or (None, None)
    if low is not None or high is not None:
        parts.append(_band_rect(
            y(top if high is None else high), y(bottom if low is None else low),
            f"at least {label(low)}" if high is None else f"at most {label(high)}"
            if low is None else f"{label(low)} to {label(high)}"))
    for index in range(0, len(days), 7):
        parts.append(f'<text x="{x(index):.1f}" y="{_HEIGHT - 10}" text-anchor="middle">'
                     f'{days[index]:%d %b}</text>')
    for number, (name, found) in enumerate(series.items()):
        colour = COLOURS[number % len(COLOURS)]
        for run in _runs(found):
            points = " ".join(f"{x(index):.1f},{y(found[index]):.1f}" for index in run)
            shape = (f'<polyline points="{points}"' if len(run) > 1 else
                     f'<circle r="2.5" cx="{x(run[0]):.1f}" cy="{y(found[run[0]]):.1f}"')
            parts.append(f'{shape} stroke="{colour}" fill="{colour if len(run) == 1 else "none"}"'
                         f' data-series="{escape(name)}"/>')
        parts.append(_legend(number, colour, name))
    if low is not None or high is not None:
        parts.append(_legend(len(series), _BAND, "expected", _BAND_OPACITY))
    parts.append("</svg>")
    return "".join(parts)


def _y_range(values: list[float], band: Optional[Band]) -> tuple[float, float]:
    """The y axis: from 0 (or the lowest value) to the largest, the band's given sides
    included; a tenth more beyond a side the band leaves open where it would be a mere line
    at the plot's edge."""
    low, high = band or (None, None)
    given = [bound for bound in (low, high) if bound is not None]
    bottom = min([0.0, *values, *given])
    top = max([bottom, *values, *given])
    if top == bottom:
        top = bottom + 1
    span = top - bottom
    if given and high is None and low == top:
        top += span / 10
    if given and low is None and high == bottom:
        bottom -= span / 10
    return bottom, top


def _band_rect(upper: float, lower: float, shown: str) -> str:
    """The band across the plot between the heights ``upper`` and ``lower``; its tooltip
    says the range."""
    return (f'<rect x="{_LEFT}" y="{upper:.1f}" width="{_WIDTH - _LEFT - _RIGHT}" '
            f'height="{lower - upper:.1f}" class="band" fill="{_BAND}" '
            f'fill-opacity="{_BAND_OPACITY}"><title>expected: {escape(shown)}</title></rect>')


def _legend(number: int, colour: str, name: str, opacity: float = 1) -> str:
    """The legend's ``number``th line, at the right of the plot."""
    at = _TOP + 14 * number
    return (f'<rect x="{_WIDTH - _RIGHT + 12}" y="{at}" width="10" height="10" '
            f'fill="{colour}" fill-opacity="{opacity}"/>'
            f'<text x="{_WIDTH - _RIGHT + 28}" y="{at + 9}">{escape(name)}</text>')


def _runs(values: Sequence[Optional[float]]) -> list[list[int]]:
    """The indexes of each stretch of values without a gap."""
    runs: list[list[int]] = []
    for index, value in enumerate(values):
        if value is None:
            continue
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs
