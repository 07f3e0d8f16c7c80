"""Status rules: component updates → line statuses and milestones → order-level status.

Pure and deterministic so the COM workflow can hold it as state and tests can drive it
without Temporal. It also decides *when* CRM must hear: only when a line's status,
milestone or data, or the order's status, has changed since the last report.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from o2a import ids
from o2a.models import (
    ComponentRun,
    ComponentState,
    ComponentUpdate,
    ComponentView,
    CustomerOrder,
    FalloutView,
    FaultDetail,
    FulfillmentStatus,
    HeardLine,
    HeardUpdate,
    JeopardyView,
    LineView,
    Model,
    OperatorActionView,
    OrderComponent,
    OrderPlan,
    OrderState,
    OrderStatus,
    RevisionView,
    RunKind,
    SalesOrderLine,
    ServiceActionCode,
)
from o2a.revision import Compensation, LineChange, RevisionPlan

_LineKey = tuple[FulfillmentStatus, str | None, bool, tuple[tuple[str, str], ...]]


def _told(line: LineView | HeardLine) -> _LineKey:
    """What CRM hears of a line: an update tells a line again only when this changed."""
    return (line.status, line.milestone, line.point_of_no_return, tuple(sorted(line.data.items())))


class CarriedTracker(Model):
    """A tracker as a continued-as-new order hands it to its next run: all it knows, and
    nothing it derives from that again (line counts, the plan's indexes)."""

    order: CustomerOrder
    plan: OrderPlan
    components: dict[str, ComponentView]
    lines: dict[str, LineView]
    fallouts: list[FalloutView]
    revisions: list[RevisionView]
    jeopardies: list[JeopardyView]
    operator_actions: list[OperatorActionView]
    ponr_passed: list[str]
    cancelled_lines: list[str]
    aborted: bool
    retired: dict[str, tuple[OrderComponent, list[SalesOrderLine]]]
    reported: dict[str, _LineKey]
    """What CRM last heard of each line, so the next run tells CRM only what changed."""
    reported_order_status: FulfillmentStatus | None
    unreported: list[str]


DETAILED_COMPONENTS = 20
"""Up to this many components the Web UI's details list each one; beyond, it sums them up."""


def aggregate_order_status(statuses: list[FulfillmentStatus]) -> FulfillmentStatus:
    """AIA order status from the statuses of the lines that carry work (docs/architecture.md §1).

    Cancelled lines drop out unless every line is cancelled.
    """
    if any(s is FulfillmentStatus.FAILED for s in statuses):
        return FulfillmentStatus.FAILED
    if any(s is FulfillmentStatus.ABORTED for s in statuses):
        return FulfillmentStatus.ABORTED
    active = [s for s in statuses if s is not FulfillmentStatus.CANCELLED]
    if statuses and not active:
        return FulfillmentStatus.CANCELLED
    if all(s is FulfillmentStatus.COMPLETE for s in active):
        return FulfillmentStatus.COMPLETE
    if any(s in (FulfillmentStatus.IN_PROGRESS, FulfillmentStatus.COMPLETE) for s in active):
        return FulfillmentStatus.IN_PROGRESS
    return FulfillmentStatus.OPEN


def line_status(states: list[ComponentState]) -> FulfillmentStatus:
    """A line's status from the states of the components that carry it."""
    if not states or all(s is ComponentState.COMPLETED for s in states):
        return FulfillmentStatus.COMPLETE
    if any(s is ComponentState.FAILED for s in states):
        return FulfillmentStatus.FAILED
    if any(s not in (ComponentState.PENDING, ComponentState.WAITING) for s in states):
        return FulfillmentStatus.IN_PROGRESS
    return FulfillmentStatus.PENDING


class FulfillmentTracker:
    def __init__(self, order: CustomerOrder, plan: OrderPlan) -> None:
        self.order = order
        self.plan = plan
        self.components = {
            c.id: ComponentView(
                id=c.id,
                function=c.function,
                target_system=c.target_system,
                state=ComponentState.PENDING,
                lines=list(c.lines),
            )
            for c in plan.components
        }
        self.lines = {
            line.id: LineView(
                id=line.id,
                name=line.item.name,
                action=line.action,
                product_class=line.item.product_class,
                pattern=plan.line_patterns[line.id],
                status=FulfillmentStatus.PENDING,
            )
            for line in order.lines
        }
        self._line_components: dict[str, list[str]] = {line_id: [] for line_id in self.lines}
        for c in plan.components:
            for line_id in c.lines:
                self._line_components[line_id].append(c.id)
        self.fallouts: list[FalloutView] = []
        self.revisions: list[RevisionView] = []
        self.jeopardies: list[JeopardyView] = []
        self.operator_actions: list[OperatorActionView] = []
        self.ponr_passed: set[str] = set()
        self.cancelled_lines: set[str] = set()
        self.aborted = False
        self.retired: dict[str, tuple[OrderComponent, list[SalesOrderLine]]] = {}
        """Components a revision dropped, with their lines as they were: what their undo
        needs if it has to run again."""
        self._reported: dict[str, _LineKey] = {}
        self._reported_order_status: FulfillmentStatus | None = None
        self._unreported: dict[str, None] = {}
        """Lines touched since CRM last heard (an ordered set): what the next report checks."""
        self._line_statuses: dict[bool, dict[FulfillmentStatus, int]] = {}
        """How many lines (True: of those that carry work) have each status: the order
        status and the UI's line counts without a scan."""
        self._plan_ids = frozenset(c.id for c in plan.components)
        self._refresh_all()

    # --- across continue-as-new -------------------------------------------------------------

    def carried(self) -> CarriedTracker:
        return CarriedTracker(
            order=self.order,
            plan=self.plan,
            components=self.components,
            lines=self.lines,
            fallouts=self.fallouts,
            revisions=self.revisions,
            jeopardies=self.jeopardies,
            operator_actions=self.operator_actions,
            ponr_passed=sorted(self.ponr_passed),
            cancelled_lines=sorted(self.cancelled_lines),
            aborted=self.aborted,
            retired=self.retired,
            reported=self._reported,
            reported_order_status=self._reported_order_status,
            unreported=list(self._unreported),
        )

    @classmethod
    def restored(cls, carried: CarriedTracker) -> FulfillmentTracker:
        """The tracker a previous run carried, exactly: CRM hears nothing twice."""
        tracker = cls(carried.order, carried.plan)
        tracker.components = carried.components
        tracker.lines = carried.lines
        tracker.fallouts = carried.fallouts
        tracker.revisions = carried.revisions
        tracker.jeopardies = carried.jeopardies
        tracker.operator_actions = carried.operator_actions
        tracker.ponr_passed = set(carried.ponr_passed)
        tracker.cancelled_lines = set(carried.cancelled_lines)
        tracker.aborted = carried.aborted
        tracker.retired = carried.retired
        tracker._refresh_all()
        tracker._reported = carried.reported
        tracker._reported_order_status = carried.reported_order_status
        tracker._unreported = dict.fromkeys(carried.unreported)
        return tracker

    # --- applying updates -----------------------------------------------------------------

    def apply(self, update: ComponentUpdate, at: datetime) -> None:
        component = self.components.get(update.component_id)
        if component is None:  # a component no revision of this order has known
            return
        component.state = update.state
        self._note_run(component, update.state, at)
        if update.state is ComponentState.IN_PROGRESS and component.started_at is None:
            component.started_at = at
        if update.state is ComponentState.COMPLETED:
            component.completed_at = at
        if update.milestone:
            component.milestone = update.milestone
            for line_id in component.lines:
                line = self.lines[line_id]
                line.milestone = update.milestone
                if update.milestone not in line.milestones:
                    line.milestones.append(update.milestone)
        touched = [line_id for line_id in component.lines if line_id in self.lines]
        for line_update in update.line_updates:
            if line_update.line_id in self.lines:
                self.lines[line_update.line_id].data.update(line_update.data)
                touched.append(line_update.line_id)
        self._note_point_of_no_return(update)
        if update.state is ComponentState.FAILED:
            self._raise_fallout(update, at)
        self._refresh(touched)

    # --- runs: what the console's timeline draws -----------------------------------------------

    def _note_run(self, component: ComponentView, state: ComponentState, at: datetime) -> None:
        """A run opens when the component starts (or starts waiting) and closes with the
        state it ends in; a wait ends in the run it waited for, under the same number."""
        current = _open_run(component)
        if state is ComponentState.IN_PROGRESS:
            if current is None:
                self._begin_run(component, RunKind.DO, at)
            elif current.kind is RunKind.WAIT:
                _end_run(component, state, at)
                self._begin_run(component, RunKind.DO, at, current.run)
        elif state is ComponentState.WAITING:
            if current is None:
                self._begin_run(component, RunKind.WAIT, at)
        else:
            _end_run(component, state, at)

    def _begin_run(
        self, component: ComponentView, kind: RunKind, at: datetime, number: int | None = None
    ) -> None:
        component.runs.append(
            ComponentRun(
                kind=kind,
                run=number or (component.runs[-1].run + 1 if component.runs else 1),
                revision=self.order.revision,
                started_at=at,
            )
        )

    def undoing(self, component_id: str, at: datetime) -> None:
        """COM takes back a finished component's work (a run of its own): recorded for the
        timeline only, the component's state stays what it was until the undo ends."""
        component = self.components[component_id]
        _end_run(component, component.state, at)
        self._begin_run(component, RunKind.UNDO, at)

    def undone(self, component_id: str, at: datetime) -> None:
        _end_run(self.components[component_id], ComponentState.CANCELLED, at)

    def _note_point_of_no_return(self, update: ComponentUpdate) -> None:
        spec = self._spec(update.component_id)
        if spec is None or spec.point_of_no_return is None:
            return
        if update.step == spec.point_of_no_return or update.state is ComponentState.COMPLETED:
            self.ponr_passed.add(spec.id)
            for line_id in spec.lines:
                self.lines[line_id].point_of_no_return = True
                self._unreported[line_id] = None

    def _spec(self, component_id: str) -> OrderComponent | None:
        return self.plan.find(component_id)

    def _raise_fallout(self, update: ComponentUpdate, at: datetime) -> None:
        component = self.components[update.component_id]
        self.fallouts.append(
            FalloutView(
                id=ids.fallout_id(self.order.order_number, len(self.fallouts) + 1),
                component=component.id,
                lines=list(component.lines),
                step=update.step,
                code=update.fault_code or "FULFILLMENT_FAILED",
                message=update.fault_message or "fulfillment step failed",
                severity="ERROR",
                state="open",
                raised_at=at,
            )
        )

    def raise_undelivered(self, message_id: str, fault: FaultDetail, at: datetime) -> None:
        """A message of the order's own could not be delivered: an incident of the order, not
        of a component, until an operator resolves it."""
        self.fallouts.append(
            FalloutView(
                id=ids.fallout_id(self.order.order_number, len(self.fallouts) + 1),
                component="",
                lines=[],
                step=None,
                code=fault.code,
                message=f"message {message_id} not delivered: {fault.message}",
                severity="ERROR",
                state="open",
                raised_at=at,
                message_id=message_id,
            )
        )

    def undelivered(self) -> list[str]:
        """Messages of open incidents, in the order they failed."""
        return [
            f.message_id for f in self.fallouts if f.message_id is not None and f.state == "open"
        ]

    def resolve_undelivered(self) -> None:
        for fallout in self.fallouts:
            if fallout.message_id is not None and fallout.state == "open":
                fallout.state = "resolved"

    def _refresh_all(self) -> None:
        """Every line's status from scratch: when a tracker is made, not per update."""
        self._line_order = {line_id: i for i, line_id in enumerate(self.lines)}
        self._line_statuses = {True: {}, False: {}}
        for line in self.lines.values():
            line.status = self._status_of(line)
            self._count(line, 1)
        self._unreported.update(dict.fromkeys(self.lines))

    def _refresh(self, line_ids: Collection[str]) -> None:
        """Only the lines an update touched: work per update grows with its lines, not the
        order's, so an order of thousands of lines costs no more per step than a small one."""
        for line_id in line_ids:
            line = self.lines[line_id]
            status = self._status_of(line)
            if status is not line.status:
                self._count(line, -1)
                line.status = status
                self._count(line, 1)
            self._unreported[line_id] = None

    def _refresh_components(self, component_ids: Collection[str]) -> None:
        self._refresh(
            list(
                dict.fromkeys(
                    line_id
                    for cid in component_ids
                    for line_id in self.components[cid].lines
                    if line_id in self.lines
                )
            )
        )

    def _count(self, line: LineView, delta: int) -> None:
        for counts in (
            self._line_statuses[False],
            self._line_statuses[True] if line.action is not ServiceActionCode.NO_CHANGE else {},
        ):
            counts[line.status] = counts.get(line.status, 0) + delta

    def _status_of(self, line: LineView) -> FulfillmentStatus:
        if line.id in self.cancelled_lines:
            return FulfillmentStatus.CANCELLED
        if line.action is ServiceActionCode.NO_CHANGE:
            return FulfillmentStatus.COMPLETE
        states = [self.components[c].state for c in self._line_components.get(line.id, [])]
        status = line_status(states)
        if self.aborted and status is not FulfillmentStatus.COMPLETE:
            return FulfillmentStatus.ABORTED
        return status

    def wait(self, component_id: str, at: datetime) -> None:
        """Future-dated: the component waits for its start time."""
        self.apply(ComponentUpdate(component_id=component_id, state=ComponentState.WAITING), at)

    def recall(self, component_ids: list[str], at: datetime | None = None) -> None:
        """Future-dated components not yet started go back to pending for a new plan."""
        for cid in component_ids:
            self.components[cid].state = ComponentState.PENDING
            _end_run(self.components[cid], ComponentState.PENDING, at)
        self._refresh_components(component_ids)

    def reopen(self, component_id: str, state: ComponentState) -> None:
        """An operator resolved a failed undo: its incidents close and the component is
        back where it was before the undo, which runs again."""
        self.components[component_id].state = state
        for fallout in self.fallouts:
            if fallout.component == component_id and fallout.state == "open":
                fallout.state = "resolved"
        self._refresh_components([component_id])

    def abort(self, at: datetime | None = None) -> None:
        """Stopped by an operator without compensation: everything unfinished ends ABORTED,
        open incidents close with it."""
        self.aborted = True
        finished = (ComponentState.COMPLETED, ComponentState.CANCELLED)
        for component in self.components.values():
            if component.state not in finished:
                component.state = ComponentState.ABORTED
            _end_run(component, ComponentState.ABORTED, at)
        for fallout in self.fallouts:
            if fallout.state == "open":
                fallout.state = "closed"
        self._refresh_all()

    def record_outcome(self, outcome: RevisionView) -> None:
        self.revisions.append(outcome)

    def record_jeopardy(self, jeopardy: JeopardyView) -> None:
        self.jeopardies.append(jeopardy)

    def record_action(self, action: OperatorActionView) -> None:
        self.operator_actions.append(action)

    def failed_components(self) -> list[str]:
        return [c.id for c in self.components.values() if c.state is ComponentState.FAILED]

    def reset_failed(self, component_id: str | None = None) -> list[str]:
        """An operator resolved the fallout (of one component, or all): the failed components
        run again and their incidents close."""
        reset = [
            c.id
            for c in self.components.values()
            if c.state is ComponentState.FAILED and component_id in (None, c.id)
        ]
        for cid in reset:
            self.components[cid].state = ComponentState.PENDING
        for fallout in self.fallouts:
            if fallout.component in reset:
                fallout.state = "resolved"
        self._refresh_components(reset)
        return reset

    # --- questions the workflow asks --------------------------------------------------------

    def ready_components(self) -> list[str]:
        """Pending components whose dependencies have all completed."""
        return [
            c.id
            for c in self.plan.components
            if self.components[c.id].state is ComponentState.PENDING
            and all(self.components[d].state is ComponentState.COMPLETED for d in c.depends_on)
        ]

    def is_finished(self) -> bool:
        planned = self._plan_ids
        return all(
            c.state is ComponentState.COMPLETED
            if c.id in planned
            else c.state not in (ComponentState.IN_PROGRESS, ComponentState.FAILED)
            for c in self.components.values()
        )

    # --- revisions and cancels --------------------------------------------------------------

    def progress(self) -> dict[str, ComponentState]:
        return {cid: c.state for cid, c in self.components.items()}

    def revised(
        self,
        order: CustomerOrder,
        plan: OrderPlan,
        revision: RevisionPlan,
        running: Collection[str] = (),
    ) -> FulfillmentTracker:
        """The tracker of the new revision, carrying over what the revision leaves standing.

        Removed lines stay visible as CANCELLED; CRM hears every line again at the new
        revision number. Components dropped from the plan end CANCELLED (undone, or never
        started), except ``running`` ones: a running child compensates itself and reports
        how it ended.
        """
        new = FulfillmentTracker(order, plan)
        for comp in revision.compensations:
            old_view = self.components.get(comp.component_id)
            if old_view is None:
                continue
            if comp.component_id not in new.components:  # dropped from the plan: to be undone
                new.components[comp.component_id] = old_view.model_copy(deep=True)
                continue
            keeps_state = comp.kind is Compensation.NONE or (
                comp.kind is not Compensation.DO and old_view.state is ComponentState.IN_PROGRESS
            )
            if keeps_state:
                view = old_view.model_copy(deep=True)
                view.lines = new.components[comp.component_id].lines
                new.components[comp.component_id] = view
                if comp.component_id in self.ponr_passed and comp.kind is Compensation.NONE:
                    new.ponr_passed.add(comp.component_id)
        for line_id, change in revision.delta.items():
            old_line = self.lines.get(line_id)
            if change is LineChange.UNCHANGED and old_line is not None:
                new.lines[line_id] = old_line.model_copy(deep=True)
            elif change is LineChange.REMOVED and old_line is not None:
                new.lines[line_id] = old_line.model_copy(deep=True)
                new.cancelled_lines.add(line_id)
        for cid, view in self.components.items():
            # Dropped by an earlier revision: still visible, and still awaited while it undoes.
            new.components.setdefault(cid, view.model_copy(deep=True))
            if not new.components[cid].runs:  # planned afresh: its past runs stay shown
                new.components[cid].runs = [run.model_copy() for run in view.runs]
        new.cancelled_lines |= self.cancelled_lines & set(new.lines)
        new.fallouts = [f.model_copy() for f in self.fallouts]
        compensated = {
            c.component_id for c in revision.compensations if c.kind is not Compensation.NONE
        }
        for fallout in new.fallouts:
            if fallout.component in compensated:  # the revision fixed or removed the work
                fallout.state = "resolved"
        new.revisions = [r.model_copy() for r in self.revisions]
        new.jeopardies = [j.model_copy() for j in self.jeopardies]
        new.operator_actions = [a.model_copy() for a in self.operator_actions]
        new.retired = dict(self.retired)
        for spec in self.plan.components:
            if spec.id not in new.plan_ids:
                lines = [line for line in self.order.lines if line.id in spec.lines]
                new.retired[spec.id] = (spec, lines)
        for comp in revision.compensations:
            if comp.component_id not in new.plan_ids and comp.component_id not in running:
                new.components[comp.component_id].state = ComponentState.CANCELLED
        new._refresh_all()
        return new

    @property
    def plan_ids(self) -> frozenset[str]:
        return self._plan_ids

    def cancel_all(self, at: datetime | None = None) -> None:
        """Every line CANCELLED, every component's work undone, every incident closed."""
        self.cancelled_lines = set(self.lines)
        for fallout in self.fallouts:
            fallout.state = "resolved"
        for component in self.components.values():
            component.state = ComponentState.CANCELLED
            _end_run(component, ComponentState.CANCELLED, at)
        self._refresh_all()

    def only_waiting(self) -> bool:
        """Future-dated work waits and nothing else is under way."""
        states = {c.state for c in self.components.values()}
        return ComponentState.WAITING in states and ComponentState.IN_PROGRESS not in states

    def has_failed(self) -> bool:
        """A component has failed, or a message could not be delivered."""
        return bool(self.failed_components() or self.undelivered())

    def order_status(self) -> FulfillmentStatus:
        """Context lines ("-") carry no work, so they neither start nor finish the order.
        Aggregated from per-status counts kept as lines change, not from a scan."""
        return aggregate_order_status(
            [status for status, n in self._line_statuses[True].items() if n > 0]
        )

    def take_changes(self) -> list[LineView] | None:
        """Lines CRM has not yet heard about; None when nothing customer-visible changed.
        Only lines touched since the last report are compared, in order-line order."""
        touched = sorted(self._unreported, key=self._line_order.__getitem__)
        self._unreported = {}
        changed = []
        for line in (self.lines[line_id] for line_id in touched):
            key = _told(line)
            if self._reported.get(line.id) != key:
                self._reported[line.id] = key
                changed.append(line.model_copy(deep=True))
        status = self.order_status()
        if not changed and status is self._reported_order_status:
            return None
        self._reported_order_status = status
        return changed

    def heard_elsewhere(
        self, heard: HeardUpdate, lines: list[LineView], status: FulfillmentStatus
    ) -> list[LineView] | None:
        """CRM has ``heard`` under the ID an update of ``lines`` and ``status`` was to take:
        an earlier try of a workflow task sent it, deciding from events in another order.
        It is taken as told (its lines may be ahead of this run, which then need not tell
        them again once it gets there). Returns the lines of the update it does not already
        say, now reported; None when it says all of the update."""
        told = {line.id: _told(line) for line in heard.lines}
        self._reported.update(told)
        rest = [line for line in lines if told.get(line.id) != _told(line)]
        for line in rest:
            self._reported[line.id] = _told(line)
        if not rest and status is heard.order_status:
            self._reported_order_status = heard.order_status
            return None
        self._reported_order_status = status
        return rest

    def snapshot(self, state: OrderState, crm_updates_sent: int) -> OrderStatus:
        components = [c.model_copy(deep=True) for c in self.components.values()]
        if state is OrderState.SUSPENDED:
            for c in components:
                if c.state in (ComponentState.IN_PROGRESS, ComponentState.WAITING):
                    c.state = ComponentState.SUSPENDED
        return OrderStatus(
            order_number=self.order.order_number,
            revision=self.order.revision,
            state=state,
            status=self.order_status(),
            customer_account=self.order.customer_account,
            lines=[line.model_copy(deep=True) for line in self.lines.values()],
            components=components,
            fallouts=[f.model_copy() for f in self.fallouts],
            revisions=[r.model_copy() for r in self.revisions],
            jeopardies=[j.model_copy() for j in self.jeopardies],
            operator_actions=[a.model_copy() for a in self.operator_actions],
            crm_updates_sent=crm_updates_sent,
        )

    def details_markdown(self, state: OrderState) -> str:
        """The Web UI's current details: a short table, not a dump of every line."""
        rows = [
            f"**{state.value}** · order status **{self.order_status().value}** · "
            f"revision {self.order.revision}",
            "",
            "| component | target system | state | lines | milestone |",
            "|---|---|---|---|---|",
        ]
        if len(self.components) <= DETAILED_COMPONENTS:
            for c in self.components.values():
                rows.append(
                    f"| {c.id} | {c.target_system} | {c.state.value} | {len(c.lines)} | "
                    f"{c.milestone or ''} |"
                )
        else:  # hundreds of components: one row per function and state
            groups: dict[tuple[str, str, ComponentState], list[ComponentView]] = {}
            for c in self.components.values():
                groups.setdefault((c.function, c.target_system, c.state), []).append(c)
            for (function, target, state_), members in groups.items():
                lines = sum(len(c.lines) for c in members)
                rows.append(
                    f"| {len(members)} x {function} | {target} | {state_.value} | {lines} | |"
                )
        counts = {s.value: n for s, n in self._line_statuses[False].items() if n > 0}
        rows += ["", "lines: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
        if self.jeopardies:
            latest = self.jeopardies[-1]
            rows.append(f"jeopardy: {latest.severity} on {latest.component}")
        if self.fallouts:
            open_fallouts = [f for f in self.fallouts if f.state == "open"]
            rows.append(f"fallout: {len(open_fallouts)} open")
        return "\n".join(rows)


def _open_run(component: ComponentView) -> ComponentRun | None:
    last = component.runs[-1] if component.runs else None
    return last if last is not None and last.ended_at is None else None


def _end_run(component: ComponentView, outcome: ComponentState, at: datetime | None) -> None:
    """Without a time (a caller that has none), an open run stays open: never a guess."""
    current = _open_run(component)
    if current is not None and at is not None:
        current.ended_at = at
        current.outcome = outcome
