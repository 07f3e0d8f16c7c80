"""A Gantt-like timeline of an order's component runs in SVG: one row per component, a bar
per run (do, undo, and future-dated waits), the time a failed run waited for an operator,
and the jeopardies raised, on one time axis from the order's start to its end (or now).

Times are the workflow's own (``ComponentRun``), so the picture is the same whenever it is
drawn and for whichever door asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from o2a.console.svg import fit, svg_open
from o2a.models import ComponentRun, ComponentState, ComponentView, JeopardyView, RunKind

WIDTH = 1000
LABEL_W = 250
ROW_H = 24
AXIS_H = 26
BAR_H = 14
MIN_BAR = 2.0
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
"""Tick intervals (seconds) the axis picks from: about six ticks across."""


def timeline(
    components: Sequence[ComponentView],
    jeopardies: Sequence[JeopardyView],
    start: datetime,
    end: datetime,
    anchors: dict[str, str],
) -> Markup:
    span = max((end - start).total_seconds(), 1.0)
    plot = WIDTH - LABEL_W - 10

    def x(moment: datetime) -> float:
        offset = min(max((moment - start).total_seconds(), 0.0), span)
        return LABEL_W + plot * offset / span

    height = AXIS_H + ROW_H * len(components) + 6
    title = f"Timeline of component runs from {_clock(start)} to {_clock(end)}"
    parts = [
        svg_open("timeline", "timeline-title", title, WIDTH, height),
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="3" height="6" class="hatch"/></pattern>'
        "</defs>",
    ]
    parts += _axis(span, plot, height)
    for row, component in enumerate(components):
        top = AXIS_H + row * ROW_H
        anchor = anchors.get(component.id)
        label = escape(fit(f"{component.function} · {component.target_system}", 34))
        text = (
            f'<text x="4" y="{top + 16}" class="row-label"><title>{escape(component.id)}'
            f"</title>{label}</text>"
        )
        parts.append(f'<a href="#{escape(anchor)}">{text}</a>' if anchor else text)
        parts.append(
            f'<line x1="{LABEL_W}" x2="{WIDTH - 10}" y1="{top + ROW_H}" '
            f'y2="{top + ROW_H}" class="row-rule"/>'
        )
        for begin, finish in _fallout_waits(component.runs, end):
            parts.append(
                _bar(
                    x(begin),
                    x(finish),
                    top,
                    "fallout-wait",
                    f"waiting for an operator: {_clock(begin)} → {_clock(finish)}",
                )
            )
        for run in component.runs:
            finish = run.ended_at or end
            kind = f"run run-{run.kind.value}"
            outcome = run.outcome.value.replace("_", "-") if run.outcome else "open"
            parts.append(
                _bar(
                    x(run.started_at),
                    x(finish),
                    top,
                    f"{kind} outcome-{outcome}",
                    _describe(run, finish),
                )
            )
        for jeopardy in jeopardies:
            if jeopardy.component == component.id:
                at = x(jeopardy.raised_at)
                parts.append(
                    f'<path d="M{at:.1f} {top + 2} l5 8 h-10z" '
                    f'class="jeopardy jeopardy-{jeopardy.severity.lower()}"><title>'
                    f"{escape(jeopardy.severity)} jeopardy at {_clock(jeopardy.raised_at)}"
                    "</title></path>"
                )
    parts.append("</svg>")
    return Markup("".join(parts))


def _axis(span: float, plot: float, height: int) -> list[str]:
    step = next((s for s in STEPS if span / s <= 7), STEPS[-1] * (int(span // STEPS[-1]) or 1))
    parts = []
    tick = 0
    while tick <= span:
        at = LABEL_W + plot * tick / span
        parts.append(
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{AXIS_H - 6}" y2="{height}" class="tick"/>'
        )
        parts.append(
            f'<text x="{at:.1f}" y="{AXIS_H - 10}" class="tick-label">+{_duration(tick)}</text>'
        )
        tick += step
    return parts


def _bar(left: float, right: float, top: int, css: str, title: str) -> str:
    width = max(right - left, MIN_BAR)
    return (
        f'<rect x="{left:.1f}" y="{top + (ROW_H - BAR_H) / 2:.1f}" width="{width:.1f}" '
        f'height="{BAR_H}" rx="2" class="{css}"><title>{escape(title)}</title></rect>'
    )


def _fallout_waits(runs: Sequence[ComponentRun], end: datetime) -> list[tuple[datetime, datetime]]:
    """From a run that failed until the next one started (or until now)."""
    waits = []
    for i, run in enumerate(runs):
        if run.outcome is ComponentState.FAILED and run.ended_at is not None:
            after = runs[i + 1].started_at if i + 1 < len(runs) else end
            waits.append((run.ended_at, after))
    return waits


def _describe(run: ComponentRun, finish: datetime) -> str:
    what = {RunKind.DO: "run", RunKind.UNDO: "undo run", RunKind.WAIT: "waiting to start"}
    ended = run.outcome.value.replace("_", " ") if run.outcome else "running"
    return (
        f"{what[run.kind]} {run.run} (revision {run.revision}): {_clock(run.started_at)} → "
        f"{_clock(finish)} ({_duration((finish - run.started_at).total_seconds())}), {ended}"
    )


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    value = timedelta(seconds=round(seconds))
    total = int(value.total_seconds())
    if total < 60:
        return f"{seconds:.1f}s" if seconds < 10 and seconds != int(seconds) else f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s" if total % 60 else f"{total // 60}m"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m" if total % 3600 else f"{total // 3600}h"
    return f"{total // 86400}d{total % 86400 // 3600}h"
