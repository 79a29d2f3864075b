"""Line charts as inline SVG, drawn on the server: no script, no library, no external asset
(the console must work where the browser reaches nothing but ``cre serve``)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from html import escape
from typing import Optional

# six slots, six colours that stay apart for the common colour blindnesses (Okabe-Ito)
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 720, 220, 64, 110, 28, 30


def line_chart(title: str, days: Sequence[datetime.date],
               series: Mapping[str, Sequence[Optional[float]]], unit: str = "",
               percent: bool = False) -> str:
    """One line per series over ``days`` (a value per day, None where there is none: the
    line breaks there); the y axis from 0 to the largest value."""
    top = max([value for values in series.values() for value in values if value is not None],
              default=0) or 1
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(index: int) -> float:
        return _LEFT + index * step

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value / top)

    def label(value: float) -> str:
        return f"{value:.1%}" if percent else f"{value:,.0f}{unit}" if value >= 10 \
            else f"{value:.2g}{unit}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {_WIDTH} {_HEIGHT}" aria-label="{escape(title)}">',
             f'<text x="{_LEFT}" y="16" class="chart-title">{escape(title)}</text>']
    for fraction in (0, 0.5, 1):
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(top * fraction):.1f}" '
                     f'y2="{y(top * fraction):.1f}" class="grid"/>'
                     f'<text x="{_LEFT - 6}" y="{y(top * fraction) + 4:.1f}" '
                     f'text-anchor="end">{escape(label(top * fraction))}</text>')
    for index in range(0, len(days), 7):
        parts.append(f'<text x="{x(index):.1f}" y="{_HEIGHT - 10}" text-anchor="middle">'
                     f'{days[index]:%d %b}</text>')
    for number, (name, values) in enumerate(series.items()):
        colour = COLOURS[number % len(COLOURS)]
        for run in _runs(values):
            points = " ".join(f"{x(index):.1f},{y(values[index]):.1f}" for index in run)
            shape = (f'<polyline points="{points}"' if len(run) > 1 else
                     f'<circle r="2.5" cx="{x(run[0]):.1f}" cy="{y(values[run[0]]):.1f}"')
            parts.append(f'{shape} stroke="{colour}" fill="{colour if len(run) == 1 else "none"}"'
                         f' data-series="{escape(name)}"/>')
        legend_y = _TOP + 14 * number
        parts.append(f'<rect x="{_WIDTH - _RIGHT + 12}" y="{legend_y}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{_WIDTH - _RIGHT + 28}" y="{legend_y + 9}">'
                     f'{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


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
