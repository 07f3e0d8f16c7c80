"""Timeouts and retry budgets shared by the COM and SOM workflows."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

FULFILLMENT_TIMEOUT = timedelta(hours=24)
FULFILLMENT_HEARTBEAT = timedelta(seconds=10)
"""Long fulfillment calls heartbeat; a lost worker is detected by this, not by the 24 h."""
MESSAGE_TIMEOUT = timedelta(seconds=10)
MESSAGE_DEADLINE = timedelta(minutes=30)
"""A message still not delivered after this (the bus down, the outbox unwritable) becomes an
incident an operator sees, instead of an order that stalls in silence."""
DECOMPOSITION_TIMEOUT = timedelta(seconds=30)

FULFILLMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
"""Transient fulfillment-system errors are retried; past this budget they become fallout."""

MESSAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
)
"""A sink outage delays a message (up to MESSAGE_DEADLINE); it never fails an order."""
