"""`o2a soak` (issue 13): the short soak end to end on a stack of its own, and each invariant
made to fail on fabricated input, so a green soak means the checks could have gone red."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from o2a import ids
from o2a.models import FulfillmentStatus, OrderState
from o2a.outbound import Fault, render_aia_fault, render_sales_order_update
from o2a.soak_checks import (
    CheckResult,
    Delivery,
    OrderOutcome,
    check_final_states,
    check_no_open_workflows,
    check_one_body_per_id,
    check_update_sequences,
    read_delivery,
    run_checks,
    summarize,
)
from tests.support import ROOT, SHORT_SOAK, SOAK_MINUTES, ShortSoak

ORDER = "SOAK-1"
CHECKS = (
    "final states",
    "one body per EBMID",
    "UpdateSalesOrderEBM sequences",
    "no open workflows",
)


def update(
    sequence: int, status: str = "IN PROGRESS", revision: int = 1, body: str = ""
) -> Delivery:
    name = ids.sales_order_update_message_id(ORDER, revision, sequence)
    return Delivery(name, name, body or f"body-{name}", status)


def completed(sent: int | None = 3) -> OrderOutcome:
    return OrderOutcome(
        ORDER, "plain", OrderState.COMPLETED, OrderState.COMPLETED, FulfillmentStatus.COMPLETE, sent
    )


GOOD = [update(1), update(2), update(3, "COMPLETE")]


def violations(result: CheckResult) -> list[str]:
    assert not result.passed
    assert result.line().startswith(f"FAIL ({len(result.violations)} violations) ")
    return result.violations


def test_a_consistent_run_passes_every_check() -> None:
    results = run_checks([completed()], GOOD, [])
    assert [r.line().split(":")[0] for r in results] == [f"PASS {name}" for name in CHECKS]
    assert summarize(results) == [r.line() for r in results]


def test_an_order_that_ended_otherwise_than_its_script_expects_fails() -> None:
    outcomes = [
        OrderOutcome("A", "cancelled", OrderState.CANCELLED, OrderState.COMPLETED),
        OrderOutcome("B", "plain", OrderState.COMPLETED, None),
        completed(),
    ]
    assert violations(check_final_states(outcomes)) == [
        "order A (cancelled): expected cancelled, got completed",
        "order B (plain): expected completed, got never ended",
    ]


def test_an_ebmid_published_with_two_bodies_fails() -> None:
    again = update(2, body="something else")
    assert violations(check_one_body_per_id([*GOOD, again])) == [
        f"EBMID {again.name} was published with 2 bodies"
    ]
    wrong_header = Delivery(GOOD[0].name, "another-id", "x")
    assert violations(check_one_body_per_id([wrong_header])) == [
        f"message {GOOD[0].name} carries EBMID another-id"
    ]


def test_a_message_id_that_reuses_a_sequence_number_fails() -> None:
    """r1.u002 and r2.u002: the order's second update twice, saying different things."""
    reused = update(2, revision=2, body="revision 2 says otherwise")
    found = violations(check_update_sequences([completed()], [*GOOD, reused]))
    assert found[0] == (
        f"order {ORDER}: sequence number reused by {GOOD[1].name}, {reused.name}"
    ), found
    assert f"order {ORDER}: revision goes back in sequence" in found[1]


def test_a_gap_in_the_sequence_fails() -> None:
    found = violations(check_update_sequences([completed()], [GOOD[0], GOOD[2]]))
    assert found == [
        f"order {ORDER}: sequence gap, missing u002",
        f"order {ORDER}: sent 3 updates, the outbox holds 2",
    ]


def test_a_last_update_that_is_not_the_final_status_fails() -> None:
    stale = [update(1), update(2, "IN PROGRESS")]
    assert violations(check_update_sequences([completed(2)], stale)) == [
        f"order {ORDER}: last update {stale[1].name} says IN PROGRESS, the order COMPLETE"
    ]
    assert violations(check_update_sequences([completed(0)], [])) == [
        f"order {ORDER}: no UpdateSalesOrderEBM"
    ]


def test_a_workflow_left_running_fails() -> None:
    assert violations(check_no_open_workflows(["order-A/Provision.x"])) == [
        "workflow order-A/Provision.x is still running"
    ]


def test_the_status_is_read_from_a_rendered_update(tmp_path: Path) -> None:
    name = ids.sales_order_update_message_id(ORDER, 2, 7)
    document = render_sales_order_update(
        name, ORDER, 2, FulfillmentStatus.CANCELLED, [], datetime(2026, 11, 26, tzinfo=UTC)
    )
    path = tmp_path / f"{name}.xml"
    path.write_bytes(document)
    delivery = read_delivery(path)
    assert (delivery.name, delivery.ebm_id, delivery.order_status) == (name, name, "CANCELLED")
    later = render_sales_order_update(
        name, ORDER, 2, FulfillmentStatus.CANCELLED, [], datetime(2026, 11, 27, tzinfo=UTC)
    )
    path.write_bytes(later)
    assert read_delivery(path).digest == delivery.digest  # the header is no part of the body


def test_a_fault_sent_again_later_is_the_same_body(tmp_path: Path) -> None:
    """A Fault carries its creation time in the body too (ReportingDateTime): not a second
    body when a retried workflow task sends it again."""
    fault = Fault("PORT_BUSY", "busy", "ERROR", "", "o2a", "o2a", "retry", "incident-1")
    digests = set()
    for day in (26, 27):
        path = tmp_path / f"FAULT.{ORDER}-F1.{day}.xml"
        path.write_bytes(
            render_aia_fault(f"FAULT.{ORDER}-F1", fault, None, datetime(2026, 11, day, tzinfo=UTC))
        )
        digests.add(read_delivery(path).digest)
    assert len(digests) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--minutes", "0"], "--minutes must be more than 0, got 0"),
        (["--rate", "-1"], "--rate must be more than 0, got -1"),
        (["--kill-every", "nan"], "--kill-every must be more than 0, got nan"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "o2a", "soak", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert (done.returncode, done.stderr.splitlines()) == (2, [f"o2a: {message}"]), done


def test_the_short_soak_passes_every_invariant(request: pytest.FixtureRequest) -> None:
    """The Acceptance's short soak: its own server and worker, both killed, every check
    green. It was started when the suite was collected (tests/conftest.py) and ran beside
    the other tests."""
    soak = request.config.stash.get(SHORT_SOAK, None) or ShortSoak.start()
    request.config.stash[SHORT_SOAK] = soak
    returncode, stdout, stderr = soak.finish(timeout=float(SOAK_MINUTES) * 60 + 330)
    report = f"{stdout}\n{stderr}\n(after {time.monotonic() - soak.began:.0f} s)"
    assert returncode == 0, report
    lines = stdout.splitlines()
    for name in CHECKS:
        assert any(line.startswith(f"PASS {name}: ") for line in lines), report
    chaos = next(line for line in lines if line.startswith("chaos"))
    assert "server restarts 1" in chaos, report
    assert "worker kills 0" not in chaos, report
