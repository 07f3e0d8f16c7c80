"""The invariants a chaos soak checks (`o2a soak`, issue 13): pure functions over the orders'
final statuses and the messages the outbox held, so each can be broken on purpose in a unit
test without killing anything.

Also the outbox readers the worker-crash test shares: what a message says without its
header, and the EBMID its header carries.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from o2a.inbound import CC_NS, SO_NS
from o2a.models import FulfillmentStatus, OrderState
from o2a.outbound import content_identity

UPDATE_KIND = "USO"
"""UpdateSalesOrderEBM, by the kind its message IDs start with (o2a/ids.py)."""
_UPDATE_TAIL = re.compile(r"^r(\d+)(?:-n\d+)?\.u(\d{3,})$")


def message_files(outbox: Path) -> list[Path]:
    """The outbox's messages, not the temporary files a write in progress leaves."""
    return sorted(p for p in outbox.glob("*.xml") if not p.name.startswith("."))


def ebm_id(root: etree._Element) -> str | None:
    found = root.find(f"{{{CC_NS}}}EBMHeader/{{{CC_NS}}}EBMID")
    return None if found is None else found.text


@dataclass(frozen=True)
class Delivery:
    """One version of a message seen in the outbox. The outbox keeps the first body an ID
    is given, but the check does not trust it: a watcher that reads each file again after
    any replacement would see every body an ID was given."""

    name: str
    """The file's stem: the ID it was published under."""
    ebm_id: str | None
    """The ID its header carries."""
    digest: str
    """Of its content without the header."""
    order_status: str | None = None
    """An UpdateSalesOrderEBM's order status code; None for other messages."""


def read_delivery(path: Path) -> Delivery:
    root = etree.parse(str(path)).getroot()
    status = root.find(f".//{{{SO_NS}}}UpdateSalesOrder/{{{CC_NS}}}Status/{{{CC_NS}}}Code")
    return Delivery(
        name=path.stem,
        ebm_id=ebm_id(root),
        digest=hashlib.sha256(content_identity(root)).hexdigest(),
        order_status=None if status is None else status.text,
    )


@dataclass(frozen=True)
class OrderOutcome:
    """What a soak script expected of its order, and how the order ended (None: it did not)."""

    order_number: str
    """As it appears in message IDs (escaped, o2a/ids.py)."""
    script: str
    expected: OrderState
    state: OrderState | None
    status: FulfillmentStatus | None = None
    crm_updates_sent: int | None = None


@dataclass
class CheckResult:
    name: str
    checked: str
    """What was looked at, e.g. "60 orders"."""
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def line(self) -> str:
        verdict = "PASS" if self.passed else f"FAIL ({len(self.violations)} violations)"
        return f"{verdict} {self.name}: {self.checked}"


def check_final_states(outcomes: Iterable[OrderOutcome]) -> CheckResult:
    """Every order reached the final state its script expects."""
    outcomes = list(outcomes)
    result = CheckResult("final states", f"{len(outcomes)} orders")
    for o in outcomes:
        if o.state is not o.expected:
            got = "never ended" if o.state is None else o.state.value
            result.violations.append(
                f"order {o.order_number} ({o.script}): expected {o.expected.value}, got {got}"
            )
    return result


def check_one_body_per_id(deliveries: Iterable[Delivery]) -> CheckResult:
    """A message ID names one message: published again (a retry, a replayed workflow) it must
    say the same, and its header must carry the ID it was published under."""
    bodies: dict[str, set[str]] = defaultdict(set)
    result = CheckResult("one body per EBMID", "")
    for d in deliveries:
        bodies[d.name].add(d.digest)
        if d.ebm_id != d.name:
            result.violations.append(f"message {d.name} carries EBMID {d.ebm_id}")
    for name, digests in sorted(bodies.items()):
        if len(digests) > 1:
            result.violations.append(f"EBMID {name} was published with {len(digests)} bodies")
    result.checked = f"{len(bodies)} message IDs"
    return result


@dataclass(frozen=True)
class _Update:
    revision: int
    sequence: int
    name: str
    status: str | None


def _updates_by_order(deliveries: Iterable[Delivery]) -> dict[str, dict[str, _Update]]:
    """The latest version of each UpdateSalesOrderEBM, by order then ID."""
    found: dict[str, dict[str, _Update]] = defaultdict(dict)
    for d in deliveries:
        kind, _, rest = d.name.partition(".")
        order, _, tail = rest.partition(".")
        match = _UPDATE_TAIL.match(tail)
        if kind == UPDATE_KIND and match:
            revision, sequence = int(match.group(1)), int(match.group(2))
            found[order][d.name] = _Update(revision, sequence, d.name, d.order_status)
    return found


def check_update_sequences(
    outcomes: Iterable[OrderOutcome], deliveries: Iterable[Delivery]
) -> CheckResult:
    """Each order's UpdateSalesOrderEBMs are numbered 1..n with no gap and no number used
    twice (across revisions too: the count is the order's), revisions never go back, as
    many as the order says it sent, and the last says the order's final status: CRM, which
    applies them in sequence, ends where the order ended."""
    outcomes = list(outcomes)
    updates = _updates_by_order(deliveries)
    result = CheckResult("UpdateSalesOrderEBM sequences", "")
    total = 0
    for o in outcomes:
        mine = sorted(updates.get(o.order_number, {}).values(), key=lambda u: u.sequence)
        total += len(mine)
        result.violations += _sequence_violations(o, mine)
    result.checked = f"{len(outcomes)} orders, {total} messages"
    return result


def _sequence_violations(o: OrderOutcome, updates: list[_Update]) -> list[str]:
    where = f"order {o.order_number}"
    if not updates:
        return [f"{where}: no UpdateSalesOrderEBM"]
    out: list[str] = []
    numbers = [u.sequence for u in updates]
    reused = sorted({n for n in numbers if numbers.count(n) > 1})
    if reused:
        names = [u.name for u in updates if u.sequence in reused]
        out.append(f"{where}: sequence number reused by {', '.join(names)}")
    missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
    if missing:
        out.append(f"{where}: sequence gap, missing {', '.join(f'u{n:03d}' for n in missing)}")
    revisions = [u.revision for u in updates]
    if revisions != sorted(revisions):
        out.append(f"{where}: revision goes back in sequence: {[u.name for u in updates]}")
    if o.crm_updates_sent is not None and o.crm_updates_sent != len(set(numbers)):
        out.append(f"{where}: sent {o.crm_updates_sent} updates, the outbox holds {len(numbers)}")
    last = updates[-1]
    if o.status is not None and last.status != o.status.value:
        out.append(f"{where}: last update {last.name} says {last.status}, the order {o.status}")
    return out


def check_no_open_workflows(running: Iterable[str]) -> CheckResult:
    """Nothing left running once every order has ended: no orphaned child, no order that
    never closed."""
    running = sorted(running)
    result = CheckResult("no open workflows", f"{len(running)} running")
    result.violations = [f"workflow {workflow_id} is still running" for workflow_id in running]
    return result


def run_checks(
    outcomes: Iterable[OrderOutcome], deliveries: Iterable[Delivery], running: Iterable[str]
) -> list[CheckResult]:
    outcomes, deliveries = list(outcomes), list(deliveries)
    return [
        check_final_states(outcomes),
        check_one_body_per_id(deliveries),
        check_update_sequences(outcomes, deliveries),
        check_no_open_workflows(running),
    ]


def summarize(results: Iterable[CheckResult]) -> list[str]:
    """One line per check, then one per violation."""
    lines: list[str] = []
    for r in results:
        lines.append(r.line())
        lines += [f"  {v}" for v in r.violations]
    return lines
