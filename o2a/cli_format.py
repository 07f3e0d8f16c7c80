"""Text for people: the command line's tables of statuses, order lists, plans and previews.

All of the CLI's wording lives here, laid out by one table helper, so the door itself only
parses arguments and picks what to print.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from o2a.models import OperatorActionView, OrderPlan, OrderStatus, RevisionView
from o2a.revision import LineChange
from o2a.service import OrderSummary, RequestReceipt, RevisionPreview, Submitted

SHOWN_LINES = 6
"""Line IDs a table cell lists before it only counts the rest."""


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell; the last one is left ragged (free text)."""
    cells = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in cells
    ]


def line_list(line_ids: Sequence[str]) -> str:
    if not line_ids:
        return "-"
    shown = ",".join(line_ids[:SHOWN_LINES])
    rest = len(line_ids) - SHOWN_LINES
    return f"{shown} +{rest} more" if rest > 0 else shown


def number_ranges(numbers: Sequence[int]) -> str:
    """1,2,3,5 as ``1-3,5``: a component that waits for forty others stays one short cell."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs) or "-"


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"


def _section(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["", title, *table(header, rows)] if rows else []


def warn(message: str) -> None:
    """A hint while a command goes on (e.g. waits): on stderr, worded as the CLI's errors."""
    print(f"o2a: {message}", file=sys.stderr, flush=True)


# --- orders -------------------------------------------------------------------------------------


def format_submitted(submitted: Submitted) -> str:
    return "\n".join(
        [
            f"order {submitted.order_number} revision {submitted.revision} submitted: "
            f"{submitted.lines} lines",
            f"workflow {submitted.workflow_id}",
            f"web ui   {submitted.web_ui}",
        ]
    )


def format_status(status: OrderStatus) -> str:
    out = [
        f"Order {status.order_number}  revision {status.revision}  "
        f"state {status.state.value}  status {status.status.value}",
        "",
        *table(
            ["LINE", "ACTION", "STATUS", "MILESTONE", "NAME"],
            [
                [line.id, line.action.value, line.status.value, line.milestone or "-", line.name]
                for line in status.lines
            ],
        ),
        "",
        *table(
            ["COMPONENT", "STATE", "LINES"],
            [[c.id, c.state.value, str(len(c.lines))] for c in status.components],
        ),
    ]
    out += _section(
        "FALLOUT",
        ["ID", "COMPONENT", "STEP", "LINES", "CODE", "STATE", "RAISED", "MESSAGE"],
        [
            [
                f.id,
                f.component,
                f.step or "-",
                line_list(f.lines),
                f.code,
                f.state,
                when(f.raised_at),
                f.message,
            ]
            for f in status.fallouts
        ],
    )
    out += _section(
        "RETRYING",
        ["ACTIVITY", "COMPONENT", "ATTEMPT", "LAST FAILURE"],
        [[r.activity, r.component or "-", str(r.attempt), r.last_failure] for r in status.retrying],
    )
    out += _section(
        "REVISIONS",
        ["NUMBER", "KIND", "OUTCOME", "REASON"],
        [[str(r.number), r.kind, r.outcome, r.reason or "-"] for r in status.revisions],
    )
    out += _section(
        "OPERATOR ACTIONS",
        ["ACTION", "OPERATOR", "WHEN", "REASON"],
        [
            [
                f"{a.action} {a.component}" if a.component else a.action,
                a.operator or "-",
                when(a.at),
                a.reason or "-",
            ]
            for a in status.operator_actions
        ],
    )
    return "\n".join(out)


def format_orders(orders: Sequence[OrderSummary]) -> str:
    return "\n".join(
        table(
            ["ORDER", "REVISION", "STATE", "STATUS", "CUSTOMER", "STARTED"],
            [
                [
                    o.order_number,
                    "-" if o.revision is None else str(o.revision),
                    o.state or "-",
                    o.status or "-",
                    o.customer or "-",
                    when(o.started),
                ]
                for o in orders
            ],
        )
    )


# --- plans and revisions --------------------------------------------------------------------------


def format_plan(plan: OrderPlan) -> str:
    """Components in the order they run (the plan's: by function, then naturally by
    group), numbered so dependencies stay short."""
    components = plan.components
    number = {c.id: i for i, c in enumerate(components, 1)}
    rows = [
        [
            str(number[c.id]),
            c.id,
            c.function,
            c.target_system,
            number_ranges(sorted(number[d] for d in c.depends_on)),
            duration(c.expected_duration_seconds),
            f"{c.point_of_no_return.value} ({c.point_of_no_return_kind})"
            if c.point_of_no_return
            else "-",
            line_list(c.lines),
        ]
        for c in components
    ]
    return "\n".join(
        [
            f"Order {plan.order_number} revision {plan.revision}: "
            f"{len(plan.line_patterns)} lines, {len(components)} components",
            "",
            *table(
                [
                    "#",
                    "COMPONENT",
                    "FUNCTION",
                    "TARGET SYSTEM",
                    "DEPENDS ON",
                    "EXPECTED",
                    "PONR",
                    "LINES",
                ],
                rows,
            ),
        ]
    )


def format_preview(preview: RevisionPreview) -> str:
    what = (
        f"Cancel (revision {preview.revision}, FulfillmentModeCode CANCEL)"
        if preview.cancel
        else f"Revision {preview.revision}"
    )
    out = [
        f"{what} of order {preview.order_number} against revision "
        f"{preview.current_revision} (order {preview.state.value}); nothing is sent",
    ]
    changes = [
        f"{change.value} {','.join(ids)}"
        for change in (LineChange.ADDED, LineChange.CHANGED, LineChange.REMOVED)
        if (ids := [i for i, c in preview.plan.delta.items() if c is change])
    ]
    if changes and not preview.cancel:
        out.append("lines: " + "; ".join(changes))
    out += [
        "",
        *table(
            ["COMPONENT", "COMPENSATION", "DO", "UNDO", "KEEP"],
            [
                [
                    c.component_id,
                    c.kind.value.upper(),
                    line_list(c.do_lines),
                    line_list(c.undo_lines),
                    line_list(c.keep_lines),
                ]
                for c in preview.plan.compensations
            ],
        ),
        "",
    ]
    if preview.hard_ponr_violations:
        out.append(
            "past the hard point of no return: "
            + ", ".join(preview.hard_ponr_violations)
            + " -- the order would reject it"
        )
    else:
        out.append("no hard point of no return in the way")
    return "\n".join(out)


# --- requests and their answers -------------------------------------------------------------------


def format_request(receipt: RequestReceipt, reason: str | None = None) -> str:
    if receipt.revision is None:
        what = "cancel"
    else:
        what = f"revision {receipt.revision}"
        if receipt.kind == "cancel":
            what += " (FulfillmentModeCode CANCEL: a cancel)"
    return f"{what} of order {receipt.order_number} sent" + (f": {reason}" if reason else "")


def format_outcome(outcome: RevisionView) -> str:
    """``accepted``, ``rejected: <reason>`` or ``cancelled``."""
    if outcome.outcome == "rejected":
        return f"rejected: {outcome.reason}"
    return outcome.outcome


def format_action(order_number: str, action: OperatorActionView) -> str:
    what = f"{action.action} {action.component}" if action.component else action.action
    by = f" by {action.operator}" if action.operator else ""
    why = f": {action.reason}" if action.reason else ""
    return f"{what} of order {order_number} accepted{by} at {when(action.at)}{why}"
