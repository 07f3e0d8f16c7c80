"""o2a's business metrics, from workflow code through the SDK's replay-safe meter.

``workflow.metric_meter()`` records nothing while a workflow replays, so an order taken up
again by another worker, or after its cache eviction, counts nothing twice; activities'
retries run no workflow code. The meter adds the namespace, task queue and workflow type;
labels here are low-cardinality (outcome, fault code, target system, function), never an
order number. They reach Prometheus through the worker's runtime (o2a/metrics.py).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from o2a.models import FalloutView, OrderComponent, OrderPlan, OrderState, RevisionView
    from workflows.order_context import FINAL_STATES


def state_shown(before: OrderState | None, after: OrderState, started: datetime) -> None:
    """The order's state as Temporal shows it changed from ``before`` (None: first shown,
    the order decomposed) to ``after``: it started, or it ended (``started`` is when its
    first run began)."""
    if before is None:
        _order_started()
    if after in FINAL_STATES and after != before:
        _order_closed(after, started)


def _order_started() -> None:
    """Once per order: not again in a run it continued as new into."""
    if workflow.info().continued_run_id is None:
        workflow.metric_meter().create_counter("o2a_orders_started", "Orders started").add(1)


def _order_closed(state: OrderState, started: datetime) -> None:
    """By outcome (completed, cancelled or aborted), with how long the order took since its
    workflow started, across continue-as-new."""
    outcome = {"outcome": state.value}
    meter = workflow.metric_meter()
    meter.create_counter("o2a_orders_closed", "Orders ended, by outcome").add(1, outcome)
    meter.create_histogram_float(
        "o2a_order_cycle_seconds", "From the order's start to its end", "s"
    ).record(_seconds_since(started), outcome)


def fallout_raised(fallout: FalloutView, plan: OrderPlan) -> None:
    component = plan.find(fallout.component)
    workflow.metric_meter().create_counter(
        "o2a_fallouts_raised", "Fallout incidents raised, by fault code and target system"
    ).add(
        1,
        {
            "code": fallout.code,
            "target_system": component.target_system if component is not None else "none",
        },
    )


def jeopardy_raised(severity: str) -> None:
    workflow.metric_meter().create_counter(
        "o2a_jeopardies_raised", "Jeopardy notifications raised, by severity"
    ).add(1, {"severity": severity})


def revision_answered(outcome: RevisionView) -> None:
    """A revise or cancel answered (accepted, rejected or cancelled), and the compensation
    an accepted one ran, per component by kind (do, undo, redo, amend)."""
    meter = workflow.metric_meter()
    meter.create_counter("o2a_revisions", "Revisions and cancels answered, by outcome").add(
        1, {"kind": outcome.kind, "outcome": outcome.outcome}
    )
    compensations = meter.create_counter(
        "o2a_compensations", "Components compensated by accepted changes, by kind"
    )
    for kind in outcome.compensation.values():
        compensations.add(1, {"kind": kind})


def component_ran(component: OrderComponent, started: datetime) -> None:
    """A component's run ended (done, failed or recalled): its duration by function and
    target system. Not when the worker tears the order down (an eviction from its cache
    runs the run's ``finally`` outside the workflow): the run has not ended, and is counted
    when it does."""
    if not workflow.in_workflow():
        return
    workflow.metric_meter().create_histogram_float(
        "o2a_component_duration_seconds", "A component's run, by function and target", "s"
    ).record(
        _seconds_since(started),
        {"function": component.function, "target_system": component.target_system},
    )


def _seconds_since(moment: datetime) -> float:
    return max((workflow.now() - moment).total_seconds(), 0.0)
