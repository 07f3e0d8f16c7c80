"""Bar charts for the dashboard, drawn in Python as SVG like the plan graph and timeline:
no charting script, and the numbers are in the page (a table reader gets them too)."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from o2a.console.svg import fit, svg_open

LABEL_WIDTH = 150
BAR_WIDTH = 300
ROW = 26


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    """The value as shown (``12``, ``3.4 s``)."""
    css: str = ""


def bar_chart(css: str, title_id: str, title: str, bars: list[Bar]) -> Markup:
    """Horizontal bars scaled to the largest value, each with its label and value."""
    top = max((b.value for b in bars), default=0) or 1
    height = ROW * max(len(bars), 1) + 6
    width = LABEL_WIDTH + BAR_WIDTH + 80
    parts = [svg_open(f"chart {css}", title_id, title, width, height)]
    for i, bar in enumerate(bars):
        y = 3 + i * ROW
        length = BAR_WIDTH * bar.value / top
        parts.append(
            f'<g class="bar {escape(bar.css)}" data-label="{escape(bar.label)}" '
            f'data-value="{bar.value:g}"><title>{escape(bar.label)}: {escape(bar.text)}</title>'
            f'<text class="label" x="{LABEL_WIDTH - 6}" y="{y + 16}" text-anchor="end">'
            f"{escape(fit(bar.label, 22))}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{max(length, 1):.1f}" height="{ROW - 8}"'
            f' rx="2"/><text class="value" x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 16}">'
            f"{escape(bar.text)}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
