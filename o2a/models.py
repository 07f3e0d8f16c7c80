"""Typed models of the customer order, its decomposition plan and its fulfillment state.

They cross every boundary (CLI → workflow → activity → child), so they are plain pydantic
models with no behaviour that touches the world; workflow code may import them freely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]

MAX_ORDER_LINES = 5_000
"""Lines per order: the size the project proves end to end, well inside Temporal's payload
and gRPC message limits."""
MAX_REVISION = 2**31 - 1
"""Revision numbers go into an Int search attribute (int64); 32 bits leave it far from
overflow in any arithmetic on them."""
EARLIEST_ORDER_DATE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ORDER_DATE = datetime(3000, 1, 1, tzinfo=UTC)


def _order_era(value: datetime) -> datetime:
    """A future-dated component sleeps until its delivery date minus its duration: year 1
    underflows that subtraction and 9999-12-31 (a common "open-ended" sentinel) sleeps for
    millennia, so both are refused at the door."""
    if not EARLIEST_ORDER_DATE <= value < LATEST_ORDER_DATE:
        raise PydanticCustomError(
            "order_date_range", "must be from 1970 up to (not including) the year 3000"
        )
    return value


OrderDateTime = Annotated[AwareDatetime, AfterValidator(_order_era)]
"""Every date of an order carries its time zone: the workflow compares it with the
timezone-aware workflow clock, and a local time would be ambiguous anyway."""


class Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


class ServiceActionCode(StrEnum):
    ADD = "ADD"
    DELETE = "DELETE"
    UPDATE = "UPDATE"
    SUSPEND = "SUSPEND"
    RESUME = "RESUME"
    MOVE_ADD = "MOVE-ADD"
    MOVE_DELETE = "MOVE-DELETE"
    NO_CHANGE = "-"


class FulfillmentMode(StrEnum):
    DELIVER = "DELIVER"
    CANCEL = "CANCEL"


class Address(Model):
    line_one: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Specification(Model):
    name: NonEmpty
    value: str = ""


class ItemReference(Model):
    name: str = ""
    type_code: str = ""
    product_class: str | None = None
    specifications: list[Specification] = Field(default_factory=list)

    def spec(self, name: str) -> str | None:
        for s in self.specifications:
            if s.name == name:
                return s.value
        return None


class SalesOrderLine(Model):
    id: NonEmpty
    business_component_id: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    action: ServiceActionCode = ServiceActionCode.ADD
    fulfillment_mode: FulfillmentMode | None = None
    requested_delivery_date: OrderDateTime | None = None
    service_address: Address | None = None
    item: ItemReference = Field(default_factory=ItemReference)


class CustomerOrder(Model):
    """The sales order header and lines of one revision (ProcessSalesOrderFulfillmentEBM)."""

    order_number: NonEmpty
    revision_id: str | None = None
    # Strict integers: lax mode would read "12", "1_0", 12.0 and true as numbers.
    revision: int = Field(default=1, ge=1, le=MAX_REVISION, strict=True)
    order_date: OrderDateTime | None = None
    requested_delivery_date: OrderDateTime | None = None
    type_code: str | None = None
    priority: int = Field(default=5, ge=0, le=9, strict=True)
    fulfillment_mode: FulfillmentMode = FulfillmentMode.DELIVER
    status_code: str | None = None
    customer_account: str | None = None
    lines: list[SalesOrderLine] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    def priority_key(self) -> int:
        """AIA FulfillmentPriorityCode (0-9, 9 highest) as a Temporal priority key (1-5, 1
        highest): 9 → 1, 7-8 → 2, the default 5-6 → 3 (Temporal's own default), 0-2 → 5."""
        return 5 - (self.priority * 5) // 10


# --- fulfillment steps ----------------------------------------------------------------------


class Step(StrEnum):
    """A call to a fulfillment system. Every function has its do step, the undo step that
    takes the work back (compensation), and, for functions that absorb a change in place,
    an amend step that sends only the changed lines."""

    DESIGN = "design"
    ACTIVATE = "activate"
    VERIFY = "verify"
    SYNC = "sync"
    SHIP = "ship"
    BILLING = "billing"
    UNDO_DESIGN = "undo-design"
    UNDO_ACTIVATE = "undo-activate"
    UNDO_VERIFY = "undo-verify"
    UNDO_SYNC = "undo-sync"
    UNDO_SHIP = "undo-ship"
    UNDO_BILLING = "undo-billing"
    AMEND_SYNC = "amend-sync"
    AMEND_BILLING = "amend-billing"

    @property
    def is_undo(self) -> bool:
        return self.value.startswith(UNDO_PREFIX)

    def undo(self) -> Step:
        return Step(UNDO_PREFIX + self.value)

    def amend(self) -> Step:
        """Only billing and customer sync have one (ValueError otherwise)."""
        return Step(AMEND_PREFIX + self.value)


UNDO_PREFIX = "undo-"
AMEND_PREFIX = "amend-"


# --- decomposition plan -------------------------------------------------------------------


class ComponentKind(StrEnum):
    """How a component is executed: inline activity or a SOM child workflow."""

    SYNC_CUSTOMER = "sync_customer"
    PROVISION = "provision"
    SHIP = "ship"
    BILLING = "billing"


KIND_STEPS: dict[ComponentKind, tuple[Step, ...]] = {
    ComponentKind.PROVISION: (Step.DESIGN, Step.ACTIVATE, Step.VERIFY),
    ComponentKind.SYNC_CUSTOMER: (Step.SYNC,),
    ComponentKind.SHIP: (Step.SHIP,),
    ComponentKind.BILLING: (Step.BILLING,),
}
"""The do steps of each kind of component, in the order they run."""


class OrderComponent(Model):
    id: str
    function: str
    target_system: str
    granularity: str
    kind: ComponentKind
    lines: list[str]
    depends_on: list[str] = Field(default_factory=list)
    expected_duration_seconds: float = 0
    point_of_no_return: Step | None = None
    """The step after which a change needs follow-on work (soft) or is refused (hard)."""
    point_of_no_return_kind: str = "soft"
    start_milestone: str | None = None
    complete_milestone: str | None = None


class RouteMode(StrEnum):
    INLINE = "inline"
    """The activity calls the system and returns its answer (the inline simulator)."""
    BUS = "bus"
    """The request goes out on the bus; the activity completes when the response comes back."""


DEFAULT_FULFILLMENT_DEADLINE = 86_400.0
"""Seconds a system on the bus has to answer a step (``O2A_FULFILLMENT_DEADLINE``)."""


class FulfillmentRoute(Model):
    """How an order's fulfillment systems are reached. Workflow code cannot read settings,
    so the decomposition activity records the worker's choice in the plan (in history); an
    order planned before the bus existed, or inline, keeps calling inline on replay."""

    mode: RouteMode = RouteMode.INLINE
    deadline_seconds: float = Field(default=DEFAULT_FULFILLMENT_DEADLINE, gt=0)
    """A step over the bus that gets no response within this becomes fallout (NO_RESPONSE)."""


class OrderPlan(Model):
    order_number: str
    revision: int
    components: list[OrderComponent]
    line_patterns: dict[str, str]
    fulfillment: FulfillmentRoute = Field(default_factory=FulfillmentRoute)

    _by_id: dict[str, OrderComponent] | None = PrivateAttr(default=None)

    def component(self, component_id: str) -> OrderComponent:
        """By ID in constant time: an order of thousands of lines has hundreds of components."""
        if self._by_id is None:
            self._by_id = {c.id: c for c in self.components}
        return self._by_id[component_id]

    def find(self, component_id: str) -> OrderComponent | None:
        try:
            return self.component(component_id)
        except KeyError:
            return None


# --- fulfillment state ----------------------------------------------------------------------


class OrderState(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    AMENDING = "amending"
    CANCELING = "canceling"
    WAITING = "waiting"
    SUSPENDED = "suspended"
    FAILED = "failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ABORTED = "aborted"


class FulfillmentStatus(StrEnum):
    OPEN = "OPEN"
    PENDING = "PENDING"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    ABORTED = "ABORTED"
    """Stopped by an operator's abort, without compensation: final, like CANCELLED."""


class ComponentState(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Undone by a revision or a cancel: its work no longer stands."""
    WAITING = "waiting"
    """Future-dated: waits for its computed start (requested delivery minus duration)."""
    SUSPENDED = "suspended"
    """Shown, not stored: a started component of a suspended order starts no new step."""
    ABORTED = "aborted"
    """Its order was aborted before it finished; nothing was undone."""


class LineUpdate(Model):
    """Data a fulfillment system hands back for one line (service IDs, numbers, addresses)."""

    line_id: str
    data: dict[str, str] = Field(default_factory=dict)


class ComponentUpdate(Model):
    """One state change of one component, carrying all its line changes at once."""

    component_id: str
    state: ComponentState
    milestone: str | None = None
    step: str | None = None
    line_updates: list[LineUpdate] = Field(default_factory=list)
    fault_code: str | None = None
    fault_message: str | None = None
    message_id: str | None = None
    """The ProcessFulfillmentOrderUpdateEBM that carried it from SOM: COM takes each once,
    however often a retried send delivers it."""


class LineView(Model):
    id: str
    name: str
    action: ServiceActionCode
    product_class: str | None
    pattern: str | None = None
    status: FulfillmentStatus
    milestone: str | None = None
    milestones: list[str] = Field(default_factory=list)
    point_of_no_return: bool = False
    """A component carrying the line has passed its point of no return; CRM is told."""
    data: dict[str, str] = Field(default_factory=dict)


class HeardLine(Model):
    """One line as an UpdateSalesOrderEBM told it to CRM."""

    id: str
    status: FulfillmentStatus
    milestone: str | None = None
    point_of_no_return: bool = False
    data: dict[str, str] = Field(default_factory=dict)


class HeardUpdate(Model):
    """What an UpdateSalesOrderEBM told CRM: the order's status and its lines'."""

    order_status: FulfillmentStatus
    lines: list[HeardLine]


class RunKind(StrEnum):
    DO = "do"
    UNDO = "undo"
    """Compensation run by COM: the component's finished work taken back."""
    WAIT = "wait"
    """Future-dated: waiting for its computed start."""


class ComponentRun(Model):
    """One run of a component in workflow time: what the console's timeline draws, and the
    run number its message IDs carry."""

    kind: RunKind
    run: int
    """As in message IDs: a wait and the run it ends in share the number."""
    revision: int
    started_at: datetime
    ended_at: datetime | None = None
    outcome: ComponentState | None = None
    """How it ended: completed, failed, cancelled, aborted (pending: recalled)."""


class ComponentView(Model):
    id: str
    function: str
    target_system: str
    state: ComponentState
    lines: list[str]
    milestone: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runs: list[ComponentRun] = Field(default_factory=list)


class FalloutView(Model):
    id: str
    component: str
    lines: list[str]
    step: str | None
    code: str
    message: str
    severity: str
    state: str
    raised_at: datetime | None = None
    message_id: str | None = None
    """Set when the incident is a message of the order's that could not be delivered (then
    ``component`` is empty): resolve sends it again."""


class JeopardyView(Model):
    component: str
    severity: str
    """Low, Medium, High or Critical, by how far past its expected duration it runs."""
    raised_at: datetime
    expected_by: datetime


class RevisionView(Model):
    """The recorded outcome of one revise or cancel request, numbered as the request that
    caused it (a CANCEL-mode revision 2 is number 2; an explicit cancel, the revision it
    cancelled)."""

    number: int
    outcome: str
    """accepted, rejected or cancelled."""
    reason: str | None = None
    request_id: str | None = None
    """The caller's ID of the request, so a caller can wait for this very outcome."""
    kind: str = "revision"
    """revision or cancel."""
    compensation: dict[str, str] = Field(default_factory=dict)
    """Component → do, undo, redo or amend: the compensation an accepted change ran."""


class OperatorActionView(Model):
    """Who did what to the order, and why: every accepted operator action is recorded."""

    action: str
    """resolve, suspend, resume or abort."""
    operator: str | None = None
    reason: str | None = None
    component: str | None = None
    at: datetime


class RetryingEffect(Model):
    """An activity of the order's or of a running SOM child's that has failed and is being
    retried (the bus or outbox down, a fulfillment system unreachable): Temporal knows, the
    workflows do not yet."""

    activity: str
    attempt: int
    last_failure: str
    component: str = ""
    """The component whose SOM child is retrying it (its messages, its system's steps);
    empty: the order's own."""


class OrderStatus(Model):
    """The answer of the status query and the workflow result (docs/architecture.md §3)."""

    order_number: str
    revision: int
    state: OrderState
    status: FulfillmentStatus
    customer_account: str | None = None
    lines: list[LineView]
    components: list[ComponentView]
    fallouts: list[FalloutView] = Field(default_factory=list)
    revisions: list[RevisionView] = Field(default_factory=list)
    jeopardies: list[JeopardyView] = Field(default_factory=list)
    operator_actions: list[OperatorActionView] = Field(default_factory=list)
    crm_updates_sent: int = 0
    retrying: list[RetryingEffect] = Field(default_factory=list)
    """Filled in by the service from Temporal's pending activities, not by the workflow."""


# --- messages between roles -----------------------------------------------------------------


class ProvisioningOrder(Model):
    """Content of the ProcessProvisioningOrderEBM that COM hands to SOM for one component."""

    order_number: str
    revision: int
    component_id: str
    target_system: str
    parent_workflow_id: str
    priority: int = 5
    customer_account: str | None = None
    run: int = 1
    """How many times COM has started this component (a retry after fallout counts)."""
    lines: list[SalesOrderLine]
    done_lines: list[str] = Field(default_factory=list)
    """Lines whose work from an earlier run stands (a redo after a revision skips them)."""
    undo_lines: list[SalesOrderLine] = Field(default_factory=list)
    """Lines, as they were, whose earlier work must be undone before anything is done."""
    fulfillment: FulfillmentRoute = Field(default_factory=FulfillmentRoute)
    """The order's plan's route to the systems, as the child cannot read settings either."""
    som_announces: bool = False
    """SOM sends this ProcessProvisioningOrderEBM itself, with its first call, so it goes
    out only once the child runs and with the body its input holds; False: COM sent it
    (orders from before ``workflows/order_patches.py``'s patch)."""
    som_patched: bool = False
    """Started by a COM whose SOM has every patch in ``workflows/provisioning_order.py``
    (step-call-sends-its-report, continue-as-new-when-suggested): the child takes them
    without asking, so its history holds no patch marker and no search attribute upsert
    for them; False: a child from before, which asks each where it always did, so its
    history replays as it ran."""


class ProvisioningRevision(Model):
    """A revise signal to a running SOM child: the new revision number (its messages and
    step calls after it say so), its new lines, and which old ones to undo."""

    revision: int
    lines: list[SalesOrderLine]
    undo_lines: list[str] = Field(default_factory=list)


class FaultDetail(Model):
    """The details an ApplicationError from a fulfillment call carries, by name."""

    code: str
    message: str = ""
    line_id: str | None = None
    step: Step | None = None


class ProvisioningResult(Model):
    component_id: str
    state: ComponentState
    line_updates: list[LineUpdate] = Field(default_factory=list)
    undone_lines: list[str] = Field(default_factory=list)
