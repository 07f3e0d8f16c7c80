"""The application service: the use cases of an order, the same for every door.

A door (the CLI, the HTTP API, the bus listener, the console) parses its input, calls one
method here and formats what comes back: typed results, the domain errors of ``o2a.errors``;
nothing here prints, exits or reads the environment. The order's workflow is reached through
its contract (``workflows.contracts.customer_order``), by name, so no door loads workflow
code. Checks of an order's state belong to the workflow: an operator action is an update
whose validator refuses it with the reason, and that reason is passed on unchanged.
See docs/architecture.md §2, "The application service".
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar, Unpack

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    Priority,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from o2a import ids, visibility
from o2a.catalog import Catalog, load_catalog
from o2a.client import failure_message
from o2a.config import Settings
from o2a.decomposition import decompose, validate_order
from o2a.errors import (
    InputError,
    NoWorkerError,
    OrderConflictError,
    StaleRevision,
    UnknownOrderError,
)
from o2a.inbound import parse_order, read_order_file
from o2a.models import (
    CustomerOrder,
    FulfillmentMode,
    FulfillmentStatus,
    Model,
    OperatorActionView,
    OrderPlan,
    OrderState,
    OrderStatus,
    RetryingEffect,
    RevisionView,
)
from o2a.revision import RevisionPlan, cancellation_plan, hard_ponr_violations, plan_revision
from o2a.simulator import validate_simulation
from workflows.contracts.customer_order import (
    ABORT_UPDATE,
    AWAIT_ATTENTION_UPDATE,
    CANCEL_SIGNAL,
    REQUEST_OUTCOME_UPDATE,
    RESOLVE_UPDATE,
    RESUME_UPDATE,
    REVISE_SIGNAL,
    REVISION_BASIS_QUERY,
    STATUS_QUERY,
    SUSPEND_UPDATE,
    WORKFLOW_TYPE,
    CancelRequest,
    CarriedOrder,
    OperatorRequest,
    OrderStart,
    OutcomeRequest,
    RevisionBasis,
    RevisionRequest,
)

ANSWER_TIMEOUT = timedelta(seconds=5)
"""How long a query or an operator action waits for a worker before NoWorkerError. Only a
worker that stopped within the last minutes costs this wait: with no poller on the order's
task queue at all, the answer is NoWorkerError at once."""

NoWorkerHint = Callable[[str], object]
"""Told why a long wait (until the order needs someone, or answers a request) may not end
soon: no worker polls the order's task queue. The wait goes on, since the order carries on
once a worker starts."""

UPDATE_OUTLIVED_WORKFLOW = "AcceptedUpdateCompletedWorkflow"
"""The server's failure type for an update whose workflow closed before it completed."""

T = TypeVar("T")


# --- results ----------------------------------------------------------------------------------


class Submitted(Model):
    order_number: str
    revision: int
    lines: int
    workflow_id: str
    web_ui: str
    """The order's page in the Temporal Web UI."""


class RequestReceipt(Model):
    """A revise or cancel signalled to the order; its outcome comes later, under this ID."""

    order_number: str
    request_id: str
    kind: Literal["revision", "cancel"]
    revision: int | None = None
    """The revision number a revise carried."""


class OrderSummary(Model):
    """One order as visibility (the search attributes) knows it, without asking a worker."""

    order_number: str
    revision: int | None
    state: str
    status: str
    customer: str
    workflow_id: str
    started: datetime
    closed: datetime | None = None
    """When the workflow closed: cycle times and throughput without asking a worker."""


class TimedStatus(Model):
    """The status with the order's workflow times and its page in the Temporal Web UI."""

    status: OrderStatus
    started: datetime
    closed: datetime | None
    web_ui: str


class OrderFilters(TypedDict, total=False):
    """What ``list_orders`` and ``count_orders`` narrow by besides state and order number."""

    status: FulfillmentStatus | None
    customer: str | None
    number_prefix: str | None
    """Order numbers starting with this (the exact number included)."""
    started_after: datetime | None
    started_before: datetime | None
    running: bool | None
    """Only orders whose workflow is open (True) or closed (False): a closed workflow keeps
    the last state it published."""


class RevisionPreview(Model):
    """What a revision would do to the running order now, as the workflow would plan it."""

    order_number: str
    current_revision: int
    revision: int
    state: OrderState
    cancel: bool
    """A FulfillmentModeCode CANCEL revision: planned as a cancel of the whole order."""
    plan: RevisionPlan
    hard_ponr_violations: list[str]
    """Components past a hard point of no return it would change: the order would refuse."""


# --- use cases that need no Temporal ------------------------------------------------------------


class OrderIntake:
    """Reading, validating and planning an order: no server needed, so a door can refuse bad
    input before it connects to anything."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self._settings.catalog_path)

    def load_order(self, path: str | Path) -> CustomerOrder:
        """Everything a submit checks before it touches Temporal."""
        return self.validated(read_order_file(path))

    def parse_order(self, data: bytes | str) -> CustomerOrder:
        return self.validated(parse_order(data.encode() if isinstance(data, str) else data))

    def validated(self, order: CustomerOrder) -> CustomerOrder:
        """The checks of a parsed order, also for one a door built itself (TMF622)."""
        validate_order(order, self.catalog)
        validate_simulation(order.lines)
        return order

    def plan(self, order: CustomerOrder) -> OrderPlan:
        return decompose(order, self.catalog)

    def load_new_order(self, path: str | Path) -> CustomerOrder:
        """An order to submit: valid, and a delivery (a CANCEL is sent to a running order)."""
        order = self.load_order(path)
        _check_submittable(order)
        return order

    def preview_revision(self, basis: RevisionBasis, order: CustomerOrder) -> RevisionPreview:
        """The revision planned against ``basis`` exactly as the workflow plans it."""
        cancel = order.fulfillment_mode is FulfillmentMode.CANCEL
        current = basis.order.revision
        if not cancel and order.revision <= current:
            raise OrderConflictError(
                f"revision {order.revision} is not higher than the current {current}"
            )
        plan = (
            cancellation_plan(basis.order, basis.plan, basis.progress)
            if cancel
            else plan_revision(basis.order, basis.plan, order, self.plan(order), basis.progress)
        )
        return RevisionPreview(
            order_number=order.order_number,
            current_revision=current,
            revision=order.revision,
            state=basis.state,
            cancel=cancel,
            plan=plan,
            hard_ponr_violations=hard_ponr_violations(plan, basis.plan, set(basis.ponr_passed)),
        )


# --- use cases on orders in Temporal ------------------------------------------------------------

OrderHandle = WorkflowHandle[Any, OrderStatus]

_DONE = {  # "only a running order can be <done>"
    RESOLVE_UPDATE: "resolved",
    SUSPEND_UPDATE: "suspended",
    RESUME_UPDATE: "resumed",
    ABORT_UPDATE: "aborted",
}


CHILDREN_PROBED = 50
"""Running SOM children whose retries an order's status shows, at most."""
CHILDREN_PROBED_AT_ONCE = 10
"""Describe calls in flight for one status, so a big order does not burst the server."""


async def retrying_effects(
    description: WorkflowExecutionDescription, converter: DataConverter, component: str = ""
) -> list[RetryingEffect]:
    """Activities that have failed at least once and are being retried, with their last
    failure: an unwritable outbox shows here long before it becomes an incident."""
    return [
        RetryingEffect(
            activity=pending.activity_type.name,
            attempt=pending.attempt,
            last_failure=await failure_message(converter, pending.last_failure),
            component=component,
        )
        for pending in description.raw_description.pending_activities
        if pending.HasField("last_failure")
    ]


@dataclass(frozen=True)
class _Ended:
    """How an order's workflow closed: the order's state, and its result if it returned one."""

    state: str
    result: OrderStatus | None


class OrderService(OrderIntake):
    def __init__(self, client: Client, settings: Settings) -> None:
        super().__init__(settings)
        self._client = client

    async def submit(self, order: CustomerOrder) -> Submitted:
        """Start the order's workflow; an order number is never started twice."""
        _check_submittable(order)
        await self._check_payload(order)
        workflow_id = ids.order_workflow_id(order.order_number)
        try:
            handle = await self._client.start_workflow(
                WORKFLOW_TYPE,
                order,
                id=workflow_id,
                task_queue=self._settings.task_queue,
                result_type=OrderStatus,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                # Inherited by the order's activities and child workflows.
                priority=Priority(priority_key=order.priority_key()),
                search_attributes=_search_attributes(order),
                # Static: it must name nothing a revision changes.
                static_summary=f"Order {order.order_number}"
                + (f", customer {order.customer_account}" if order.customer_account else ""),
            )
        except WorkflowAlreadyStartedError:
            raise OrderConflictError(
                f"order {order.order_number} was already submitted (workflow {workflow_id})"
            ) from None
        return Submitted(
            order_number=order.order_number,
            revision=order.revision,
            lines=len(order.lines),
            workflow_id=handle.id,
            web_ui=ids.web_ui_link(self._settings.ui_url, self._client.namespace, handle.id),
        )

    async def status(self, order_number: str) -> OrderStatus:
        """A finished order answers from its result (no worker needed); a running one by query."""
        return await self._status(order_number, await self._describe(order_number))

    async def timed_status(self, order_number: str) -> TimedStatus:
        """The status with when the order started and closed: one describe for both."""
        description = await self._describe(order_number)
        return TimedStatus(
            status=await self._status(order_number, description),
            started=description.start_time,
            closed=description.close_time,
            web_ui=ids.web_ui_link(self._settings.ui_url, self._client.namespace, description.id),
        )

    async def order_in_force(self, order_number: str) -> tuple[CustomerOrder, OrderPlan] | None:
        """The revision in force and its plan: asked of a running order; read from a closed
        one's history (its start and the accepted revise) and planned again. None while
        a running order is not yet decomposed."""
        description = await self._describe(order_number)
        if await self._how_ended(description) is None:
            try:
                basis = await self._query(
                    order_number, description, REVISION_BASIS_QUERY, RevisionBasis
                )
            except OrderConflictError:
                return None
            return basis.order, basis.plan
        revision = description.typed_search_attributes.get(visibility.ORDER_REVISION)
        order = await self._order_from_history(order_number, revision)
        return (order, self.plan(order)) if order is not None else None

    async def _order_from_history(
        self, order_number: str, revision: int | None
    ) -> CustomerOrder | None:
        found: CustomerOrder | None = None
        convert = self._client.data_converter
        async for event in self._handle(order_number).fetch_history_events():
            if event.HasField("workflow_execution_started_event_attributes"):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                [start] = await convert.decode(payloads, [OrderStart])  # type: ignore[list-item]
                # A run continued as new starts from what the previous one carried.
                found = start.tracker.order if isinstance(start, CarriedOrder) else start
            elif (
                event.HasField("workflow_execution_signaled_event_attributes")
                and event.workflow_execution_signaled_event_attributes.signal_name == REVISE_SIGNAL
            ):
                payloads = event.workflow_execution_signaled_event_attributes.input.payloads
                [request] = await convert.decode(payloads, [RevisionRequest])
                revised: CustomerOrder = request.order
                if (
                    revised.revision == revision
                    and revised.fulfillment_mode is FulfillmentMode.DELIVER
                ):
                    found = revised
        return found

    async def _status(
        self, order_number: str, description: WorkflowExecutionDescription
    ) -> OrderStatus:
        ended = await self._how_ended(description)
        if ended is not None and ended.result is not None:
            return ended.result
        status = await self._query(order_number, description, STATUS_QUERY, OrderStatus)
        status.retrying = await retrying_effects(description, self._client.data_converter)
        status.retrying += await self._children_retrying(description)
        return status

    async def _children_retrying(
        self, description: WorkflowExecutionDescription
    ) -> list[RetryingEffect]:
        """What the order's running SOM children are retrying: a provisioning system or the
        bus down shows here too, not only once a child's budget or deadline makes fallout.
        One describe per child, so at most ``CHILDREN_PROBED`` of them, the first by
        component ID (a 1,000-line order runs 500; the Web UI shows each)."""
        children: list[tuple[str, str]] = []  # (component, child workflow ID)
        for child in description.raw_description.pending_children:
            parsed = ids.order_of_workflow(child.workflow_id)
            if parsed is not None and parsed[1] is not None:
                children.append((parsed[1], child.workflow_id))
        children = sorted(children)[:CHILDREN_PROBED]
        calls = asyncio.Semaphore(CHILDREN_PROBED_AT_ONCE)

        async def of(component: str, child_id: str) -> list[RetryingEffect]:
            try:
                async with calls:
                    child = await self._client.get_workflow_handle(child_id).describe()
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:  # it closed meanwhile
                    return []
                raise
            return await retrying_effects(child, self._client.data_converter, component)

        found = await asyncio.gather(*(of(*child) for child in children))
        return [effect for effects in found for effect in effects]

    async def started(self, order_number: str) -> datetime:
        """When the order's workflow started: the creation date a door shows."""
        started: datetime = (await self._describe(order_number)).start_time
        return started

    async def list_orders(
        self,
        state: OrderState | None = None,
        limit: int = 50,
        *,
        states: Collection[OrderState] = (),
        order_numbers: Collection[str] = (),
        offset: int = 0,
        **filters: Unpack[OrderFilters],
    ) -> list[OrderSummary]:
        """The newest ``limit`` orders by start time after the first ``offset``, in ``state``
        or any of ``states``, among ``order_numbers`` if given, narrowed by ``filters``
        (fulfillment status, customer account, ...). SQL visibility cannot ORDER BY, so
        the matching orders are read and the newest kept: only those of the latest start
        times that hold enough of them (``_recent``), not all of them."""
        query = _list_query(states or ([state] if state else []), order_numbers, **filters)
        query = await self._recent(query, offset + limit)
        found: list[OrderSummary] = []
        async for wf in self._client.list_workflows(query):
            attrs = wf.typed_search_attributes
            found.append(
                OrderSummary(
                    order_number=attrs.get(visibility.ORDER_NUMBER) or wf.id,
                    revision=attrs.get(visibility.ORDER_REVISION),
                    state=attrs.get(visibility.ORDER_STATE) or "",
                    status=attrs.get(visibility.ORDER_STATUS) or "",
                    customer=attrs.get(visibility.CUSTOMER_ID) or "",
                    workflow_id=wf.id,
                    started=wf.start_time,
                    closed=wf.close_time,
                )
            )
        return heapq.nlargest(offset + limit, found, key=lambda o: o.started)[offset:]

    async def _recent(self, query: str, wanted: int) -> str:
        """``query`` bounded to recent start times that still hold ``wanted`` orders (and
        not many more): windows back from now, each 4 times longer, then halved. Counts
        are cheap, so a page of the newest of 10,000 orders reads dozens, not all."""

        def since(moment: datetime) -> str:
            return f"{query} AND StartTime >= '{moment.isoformat()}'"

        async def count(text: str) -> int:
            return (await self._client.count_workflows(text)).count

        if await count(query) <= 2 * wanted:
            return query
        now, span = datetime.now(UTC), timedelta(minutes=1)
        late = now  # since ``late`` too few orders started; since ``now - span``, enough?
        while await count(since(now - span)) < wanted:
            late, span = now - span, span * 4
            if span > RECENT_LIMIT:
                return query
        early = now - span
        while late - early > timedelta(milliseconds=1):
            middle = early + (late - early) / 2
            found = await count(since(middle))
            if found < wanted:
                late = middle
            else:
                early = middle
                if found <= 2 * wanted:
                    break
        return since(early)

    async def count_orders(
        self,
        states: Collection[OrderState] = (),
        order_numbers: Collection[str] = (),
        **filters: Unpack[OrderFilters],
    ) -> int:
        """How many orders ``list_orders`` with the same filters pages through."""
        query = _list_query(states, order_numbers, **filters)
        return (await self._client.count_workflows(query)).count

    async def count_by_state(self, **filters: Unpack[OrderFilters]) -> dict[OrderState, int]:
        """Orders per state: one count each, at once (visibility groups by no custom
        attribute)."""
        counts = await asyncio.gather(*(self.count_orders([s], **filters) for s in OrderState))
        return dict(zip(OrderState, counts, strict=True))

    async def wait_for_attention(
        self, order_number: str, on_no_worker: NoWorkerHint | None = None
    ) -> OrderStatus:
        """Returns once the order needs someone (failed, suspended) or has ended."""
        answer = await self._update(
            order_number, AWAIT_ATTENTION_UPDATE, None, OrderStatus, on_no_worker=on_no_worker
        )
        if isinstance(answer, _Ended):
            if answer.result is None:
                raise OrderConflictError(
                    f"order {order_number} is {answer.state}: its workflow left no status"
                )
            return answer.result
        return answer

    async def receive(
        self, order: CustomerOrder, request_id: str | None = None
    ) -> RequestReceipt | None:
        """An order document as CRM sends it, to an endpoint or a queue: a new order starts
        (None); a higher revision of an existing order, or a FulfillmentModeCode CANCEL, is
        signalled to it (its receipt); a revision the order already has, or a cancel of a
        cancelled order, is a StaleRevision.
        ``request_id`` names the revise or cancel (a queue's message ID, say)."""
        if order.fulfillment_mode is not FulfillmentMode.CANCEL:
            try:
                await self.submit(order)
                return None
            except OrderConflictError:  # it exists: a revision, if higher than the one it has
                description = await self._describe(order.order_number)
                current = description.typed_search_attributes.get(visibility.ORDER_REVISION)
                if current is not None and order.revision <= current:
                    raise StaleRevision(
                        f"order {order.order_number} is at revision {current}: "
                        f"revision {order.revision} is not higher"
                    ) from None
        try:
            return await self.revise(order, request_id)
        except OrderConflictError:
            if order.fulfillment_mode is not FulfillmentMode.CANCEL:
                raise
            ended = await self._ended(order.order_number)
            if ended is not None and ended.state == OrderState.CANCELLED.value:
                raise StaleRevision(f"order {order.order_number} is already cancelled") from None
            raise

    async def revise(self, order: CustomerOrder, request_id: str | None = None) -> RequestReceipt:
        """Signal a revision (the whole order again); FulfillmentModeCode CANCEL makes it a
        cancel. The order takes it in its turn: ``request_outcome`` tells how it went."""
        receipt = RequestReceipt(
            order_number=order.order_number,
            request_id=request_id or uuid.uuid4().hex,
            kind="cancel" if order.fulfillment_mode is FulfillmentMode.CANCEL else "revision",
            revision=order.revision,
        )
        request = RevisionRequest(order=order, request_id=receipt.request_id)
        await self._check_payload(order)
        await self._signal(order.order_number, REVISE_SIGNAL, request, "revised")
        return receipt

    async def cancel(
        self,
        order_number: str,
        reason: str | None = None,
        operator: str | None = None,
        request_id: str | None = None,
    ) -> RequestReceipt:
        receipt = RequestReceipt(
            order_number=order_number, request_id=request_id or uuid.uuid4().hex, kind="cancel"
        )
        request = CancelRequest(request_id=receipt.request_id, reason=reason, operator=operator)
        await self._signal(order_number, CANCEL_SIGNAL, request, "cancelled")
        return receipt

    async def request_outcome(
        self, order_number: str, request_id: str, on_no_worker: NoWorkerHint | None = None
    ) -> RevisionView:
        """Waits until the order has answered that revise or cancel: accepted, rejected and
        why, or cancelled."""
        answer = await self._update(
            order_number,
            REQUEST_OUTCOME_UPDATE,
            OutcomeRequest(request_id=request_id),
            RevisionView,
            on_no_worker=on_no_worker,
        )
        if not isinstance(answer, _Ended):
            return answer
        revisions = answer.result.revisions if answer.result else []
        for outcome in revisions:
            if outcome.request_id == request_id:
                return outcome
        raise OrderConflictError(
            f"order {order_number} is {answer.state} and never answered request {request_id}"
        )

    async def resolve(self, order_number: str, request: OperatorRequest) -> OperatorActionView:
        """Retry the failed components (or the one named), a failed undo included."""
        return await self._operator_action(order_number, RESOLVE_UPDATE, request)

    async def suspend(self, order_number: str, request: OperatorRequest) -> OperatorActionView:
        """Running steps finish; no new step starts."""
        return await self._operator_action(order_number, SUSPEND_UPDATE, request)

    async def resume(self, order_number: str, request: OperatorRequest) -> OperatorActionView:
        return await self._operator_action(order_number, RESUME_UPDATE, request)

    async def abort(self, order_number: str, request: OperatorRequest) -> OperatorActionView:
        """End the order at once, without compensation."""
        return await self._operator_action(order_number, ABORT_UPDATE, request)

    async def dry_run_revision(self, order: CustomerOrder) -> RevisionPreview:
        """The compensation the revision would run against the running order now; starts
        nothing and signals nothing."""
        description = await self._describe(order.order_number)
        ended = await self._how_ended(description)
        if ended is not None:
            raise _not_running(order.order_number, ended, "revised")
        basis = await self._query(
            order.order_number, description, REVISION_BASIS_QUERY, RevisionBasis
        )
        return self.preview_revision(basis, order)

    # --- talking to the order's workflow --------------------------------------------------------

    async def _check_payload(self, order: CustomerOrder) -> None:
        """Within the line and document limits an order can still be too big for history
        once encoded (specifications of random text do not compress): refused at the door,
        not by Temporal halfway through."""
        [payload] = await self._client.data_converter.encode([order])
        size = payload.ByteSize()
        if size > MAX_ORDER_PAYLOAD:
            raise InputError(
                f"order {order.order_number} is {size // 1024:,} KiB once encoded for Temporal, "
                f"over the {MAX_ORDER_PAYLOAD // 1024} KiB an order may take"
            )

    def _handle(self, order_number: str) -> OrderHandle:
        """An order number no order can have (a line break in it, far too long) is bad
        input, refused before Temporal is asked."""
        ids.check_business_keys(order_number, [])
        return self._client.get_workflow_handle(
            ids.order_workflow_id(order_number), result_type=OrderStatus
        )

    async def describe(self, order_number: str) -> WorkflowExecutionDescription:
        """The order's workflow as Temporal describes it (o2a move checks it runs)."""
        return await self._describe(order_number)

    async def _describe(self, order_number: str) -> WorkflowExecutionDescription:
        """The one place every command finds the order's workflow: UnknownOrderError if there
        is none, or if its ID holds a workflow of another type, so no command reaches one."""
        handle = self._handle(order_number)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            description = None
        if description is None or description.workflow_type != WORKFLOW_TYPE:
            raise UnknownOrderError(f"no order {order_number} (workflow {handle.id})")
        return description

    async def _ended(self, order_number: str) -> _Ended | None:
        """None while the order's workflow runs; UnknownOrderError if there is none."""
        return await self._how_ended(await self._describe(order_number))

    async def _how_ended(self, description: WorkflowExecutionDescription) -> _Ended | None:
        status = description.status
        if status is WorkflowExecutionStatus.RUNNING:
            return None
        if status is WorkflowExecutionStatus.COMPLETED:
            handle = self._client.get_workflow_handle(
                description.id, run_id=description.run_id, result_type=OrderStatus
            )
            result = await handle.result()
            return _Ended(result.state.value, result)
        return _Ended(status.name.lower() if status else "closed", None)

    async def _worker_polls(self, description: WorkflowExecutionDescription) -> bool:
        """Whether any worker has lately polled the order's task queue (the server forgets a
        poller some minutes after its last poll)."""
        answer = await self._client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._client.namespace,
                task_queue=TaskQueue(name=description.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return bool(answer.pollers)

    async def _query(
        self,
        order_number: str,
        description: WorkflowExecutionDescription,
        query: str,
        result_type: type[T],
    ) -> T:
        if not await self._worker_polls(description):
            raise self._no_worker(order_number, description)
        try:
            answer: T = await self._handle(order_number).query(
                query, result_type=result_type, rpc_timeout=ANSWER_TIMEOUT
            )
        except WorkflowQueryFailedError as exc:
            raise OrderConflictError(
                f"order {order_number} cannot answer yet: {exc.message}"
            ) from None
        except RPCError as exc:
            # The client's own timeout ends the call as CANCELLED ("Timeout expired").
            if exc.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
            raise self._no_worker(order_number, description) from None
        return answer

    async def _signal(self, order_number: str, signal: str, arg: Model, done: str) -> None:
        ended = await self._ended(order_number)
        if ended is not None:
            raise _not_running(order_number, ended, done)
        try:
            await self._handle(order_number).signal(signal, arg)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            ended = await self._ended(order_number)  # it closed since
            if ended is None:
                raise
            raise _not_running(order_number, ended, done) from None

    async def _operator_action(
        self, order_number: str, update: str, request: OperatorRequest
    ) -> OperatorActionView:
        answer = await self._update(
            order_number, update, request, OperatorActionView, rpc_timeout=ANSWER_TIMEOUT
        )
        if isinstance(answer, _Ended):
            raise _not_running(order_number, answer, _DONE[update])
        return answer

    async def _update(
        self,
        order_number: str,
        update: str,
        arg: Model | None,
        result_type: type[T],
        rpc_timeout: timedelta | None = None,
        on_no_worker: NoWorkerHint | None = None,
    ) -> T | _Ended:
        """The update's answer, or how the workflow ended if it closed first. A refusal by
        the workflow (its validator, with the reason) is an OrderConflictError. With no
        worker polling, an update due within ``rpc_timeout`` fails at once; a long wait
        goes on after telling ``on_no_worker``."""
        description = await self._describe(order_number)
        ended = await self._how_ended(description)
        if ended is not None:
            return ended
        if not await self._worker_polls(description):
            if rpc_timeout is not None:
                raise self._no_worker(order_number, description)
            if on_no_worker is not None:
                on_no_worker(
                    f"no worker is polling task queue {description.task_queue!r}: "
                    f"order {order_number} makes no progress until one does; still waiting"
                )
        handle = self._handle(order_number)
        args = [] if arg is None else [arg]
        try:
            answer: T = await handle.execute_update(
                update, args=args, result_type=result_type, rpc_timeout=rpc_timeout
            )
            return answer
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type != UPDATE_OUTLIVED_WORKFLOW:
                raise OrderConflictError(cause.message) from None
            failure: Exception = exc
        except RPCError as exc:  # NOT_FOUND: no such workflow, or it has already closed
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            failure = exc
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            if rpc_timeout is None:
                raise
            raise self._no_worker(order_number, description) from None
        ended = await self._ended(order_number)
        if ended is None:
            raise failure
        return ended

    def _no_worker(
        self, order_number: str, description: WorkflowExecutionDescription
    ) -> NoWorkerError:
        return NoWorkerError(
            f"order {order_number} is running but no worker answered: is a worker polling "
            f"task queue {description.task_queue!r}?"
        )


RECENT_LIMIT = timedelta(days=3650)
"""Past this the windows stop: the whole query is read."""

MAX_ORDER_PAYLOAD = 512 * 1024
"""Temporal warns at 512 KiB per payload and refuses at 2 MiB; an order (compressed by the
codec, o2a/codec.py) stays within the warning."""


def _check_submittable(order: CustomerOrder) -> None:
    if order.fulfillment_mode is FulfillmentMode.CANCEL:
        raise InputError(
            f"order {order.order_number} has FulfillmentModeCode CANCEL: "
            "a cancel is sent to a running order, not submitted"
        )


def _not_running(order_number: str, ended: _Ended, done: str) -> OrderConflictError:
    return OrderConflictError(
        f"order {order_number} is {ended.state}: only a running order can be {done}"
    )


def _list_query(
    states: Collection[OrderState],
    order_numbers: Collection[str],
    **filters: Unpack[OrderFilters],
) -> str:
    """Order numbers are matched by workflow ID: escaped, they need no quoting."""
    status, customer = filters.get("status"), filters.get("customer")
    query = f"WorkflowType = '{WORKFLOW_TYPE}'"
    if states:
        named = ", ".join(f"'{state.value}'" for state in states)
        query += f" AND {visibility.ORDER_STATE.name} IN ({named})"
    if order_numbers:
        named = ", ".join(f"'{ids.order_workflow_id(n)}'" for n in order_numbers)
        query += f" AND WorkflowId IN ({named})"
    if status is not None:
        query += f" AND {visibility.ORDER_STATUS.name} = '{status.value}'"
    if customer is not None:
        query += f" AND {visibility.CUSTOMER_ID.name} = '{_query_literal(customer)}'"
    if prefix := filters.get("number_prefix"):
        query += f" AND {visibility.ORDER_NUMBER.name} STARTS_WITH '{_query_literal(prefix)}'"
    for operator, moment in (
        (">=", filters.get("started_after")),
        ("<", filters.get("started_before")),
    ):
        if moment is not None:
            query += f" AND StartTime {operator} '{moment.astimezone(UTC).isoformat()}'"
    if (running := filters.get("running")) is not None:
        query += f" AND ExecutionStatus {'=' if running else '!='} 'Running'"
    return query


def _query_literal(value: str) -> str:
    """A value for a visibility query: Temporal unquotes literals unreliably (a leading or
    trailing quote is lost), so a value that would need quoting is refused, not spliced in."""
    if not value.isprintable() or any(c in value for c in "'\"\\"):
        raise InputError(f"cannot search for {value!r}: it holds a quote or a backslash")
    return value


def _search_attributes(order: CustomerOrder) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(visibility.ORDER_NUMBER, order.order_number),
        SearchAttributePair(visibility.ORDER_STATE, OrderState.NOT_STARTED.value),
        SearchAttributePair(visibility.ORDER_STATUS, FulfillmentStatus.OPEN.value),
        SearchAttributePair(visibility.ORDER_REVISION, order.revision),
    ]
    if order.customer_account:
        pairs.append(SearchAttributePair(visibility.CUSTOMER_ID, order.customer_account))
    return TypedSearchAttributes(pairs)
