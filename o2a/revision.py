"""Revision planning: what a revised order means for work already done.

A revision carries the whole order again. Planning compares it line by line with the order
in force (added, removed, changed, unchanged), lays the new decomposition beside the old
one, and gives every component a compensation: DO what is new, UNDO what is no longer
wanted, REDO what changed (AMEND where the component absorbs the change in place), NONE
for the rest. Pure, so the COM workflow can call it and tests can check it exhaustively.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from o2a.models import (
    ComponentKind,
    ComponentState,
    CustomerOrder,
    Model,
    OrderComponent,
    OrderPlan,
    SalesOrderLine,
)


class LineChange(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class Compensation(StrEnum):
    DO = "do"
    UNDO = "undo"
    REDO = "redo"
    AMEND = "amend"
    NONE = "none"


class ComponentCompensation(Model):
    component_id: str
    kind: Compensation
    do_lines: list[str] = Field(default_factory=list)
    """Lines of the new plan whose work must be done (again)."""
    undo_lines: list[str] = Field(default_factory=list)
    """Lines whose work done under the old revision must be undone (removed or changed)."""
    keep_lines: list[str] = Field(default_factory=list)
    """Lines whose work done under the old revision stands."""


class RevisionPlan(Model):
    revision: int
    delta: dict[str, LineChange]
    compensations: list[ComponentCompensation]

    def is_empty(self) -> bool:
        return all(c.kind is Compensation.NONE for c in self.compensations)

    def summary(self) -> dict[str, str]:
        """Component → what it must do, for the components that must do anything."""
        return {
            c.component_id: c.kind.value
            for c in self.compensations
            if c.kind is not Compensation.NONE
        }

    def of(self, component_id: str) -> ComponentCompensation:
        for c in self.compensations:
            if c.component_id == component_id:
                return c
        raise KeyError(component_id)


# Completed components that take a change in place (a billing account is amended, not torn
# down): the removed lines get the undo step, the changed ones the amend step, the added
# ones the do step, and untouched lines no call at all. The others undo the old work of
# the changed lines and redo it.
AMENDABLE = frozenset({ComponentKind.BILLING, ComponentKind.SYNC_CUSTOMER})


def _line_key(line: SalesOrderLine) -> tuple[object, ...]:
    """What fulfillment depends on: a difference here means the line's work must change."""
    return (
        line.action,
        line.parent_id,
        line.item.product_class,
        line.item.type_code,
        line.item.name,
        tuple(sorted((s.name, s.value) for s in line.item.specifications)),
        line.service_address.model_dump_json() if line.service_address else None,
    )


def line_changed(old: SalesOrderLine, new: SalesOrderLine) -> bool:
    """The line's fulfilled work no longer matches what the new version asks for."""
    return _line_key(old) != _line_key(new)


def line_delta(old: CustomerOrder, new: CustomerOrder) -> dict[str, LineChange]:
    old_lines = {line.id: line for line in old.lines}
    new_lines = {line.id: line for line in new.lines}
    delta: dict[str, LineChange] = {}
    for line_id, line in old_lines.items():
        if line_id not in new_lines:
            delta[line_id] = LineChange.REMOVED
        elif _line_key(line) != _line_key(new_lines[line_id]):
            delta[line_id] = LineChange.CHANGED
        else:
            delta[line_id] = LineChange.UNCHANGED
    for line_id in new_lines:
        delta.setdefault(line_id, LineChange.ADDED)
    return delta


def plan_revision(
    old_order: CustomerOrder,
    old_plan: OrderPlan,
    new_order: CustomerOrder,
    new_plan: OrderPlan,
    progress: dict[str, ComponentState],
) -> RevisionPlan:
    """``progress`` is the state of each component of the old plan when the revision lands."""
    delta = line_delta(old_order, new_order)
    old = {c.id: c for c in old_plan.components}
    new = {c.id: c for c in new_plan.components}
    compensations = [
        _compensate(old.get(cid), new.get(cid), delta, progress.get(cid, ComponentState.PENDING))
        for cid in [*old, *(cid for cid in new if cid not in old)]
    ]
    return RevisionPlan(revision=new_order.revision, delta=delta, compensations=compensations)


def _compensate(
    old: OrderComponent | None,
    new: OrderComponent | None,
    delta: dict[str, LineChange],
    state: ComponentState,
) -> ComponentCompensation:
    if old is None:
        assert new is not None
        return ComponentCompensation(component_id=new.id, kind=Compensation.DO, do_lines=new.lines)
    started = state not in (ComponentState.PENDING, ComponentState.WAITING)
    if new is None:
        if not started:
            return ComponentCompensation(component_id=old.id, kind=Compensation.NONE)
        return ComponentCompensation(
            component_id=old.id, kind=Compensation.UNDO, undo_lines=old.lines
        )
    old_lines, new_lines = set(old.lines), set(new.lines)
    undo = [
        line for line in old.lines if line not in new_lines or delta[line] is LineChange.CHANGED
    ]
    do = [line for line in new.lines if line not in old_lines or delta[line] is LineChange.CHANGED]
    if not undo and not do:
        return ComponentCompensation(component_id=old.id, kind=Compensation.NONE)
    if not started:
        # Nothing was done yet: the component simply runs with the new content.
        return ComponentCompensation(component_id=new.id, kind=Compensation.DO, do_lines=new.lines)
    if state is not ComponentState.COMPLETED:
        # Partial work (running or failed): only the lines' own progress knows what stands,
        # so every line is (re)done; a running child skips the steps it has already done.
        do = list(new.lines)
        kind = Compensation.REDO
    else:
        kind = Compensation.AMEND if new.kind in AMENDABLE else Compensation.REDO
    keep = [line for line in new.lines if line not in do]
    return ComponentCompensation(
        component_id=new.id, kind=kind, do_lines=do, undo_lines=undo, keep_lines=keep
    )


def hard_ponr_violations(plan: RevisionPlan, old_plan: OrderPlan, passed: set[str]) -> list[str]:
    """Components past a hard point of no return that the revision would change."""
    hard = {c.id for c in old_plan.components if c.point_of_no_return_kind == "hard"}
    return [
        c.component_id
        for c in plan.compensations
        if c.kind in (Compensation.UNDO, Compensation.REDO, Compensation.AMEND)
        and c.component_id in hard & passed
    ]


def cancellation_plan(
    order: CustomerOrder, plan: OrderPlan, progress: dict[str, ComponentState]
) -> RevisionPlan:
    """A cancel is the revision that wants nothing: every started component is undone."""
    return RevisionPlan(
        revision=order.revision,
        delta={line.id: LineChange.REMOVED for line in order.lines},
        compensations=[
            ComponentCompensation(component_id=c.id, kind=Compensation.UNDO, undo_lines=c.lines)
            if progress.get(c.id, ComponentState.PENDING)
            not in (ComponentState.PENDING, ComponentState.WAITING)
            else ComponentCompensation(component_id=c.id, kind=Compensation.NONE)
            for c in plan.components
        ],
    )
