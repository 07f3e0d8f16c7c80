"""The fulfillment-system simulator contract (docs/architecture.md §3) and the data it hands back.

Until real adapters exist, lines steer the simulated systems with three specifications:
``SimulatedDelay`` (seconds per step), ``SimulatedFault`` (``STEP[:CODE[:COUNT]]``) and
``SimulatedOutage`` (``STEP:COUNT``). They are parsed and validated here, so submit refuses a
malformed one before anything starts and the simulator adapter reads them the same way.
Everything a simulated system returns is derived from the order, so a retried step
returns the same identifiers (idempotent, like a real inventory lookup by order key).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from o2a.errors import InputError
from o2a.models import SalesOrderLine, Step

DELAY_SPEC = "SimulatedDelay"
FAULT_SPEC = "SimulatedFault"
OUTAGE_SPEC = "SimulatedOutage"
DEFAULT_FAULT_CODE = "SIMULATED_FAULT"
KNOWN_STEPS = tuple(step.value for step in Step)
MAX_DELAY_SECONDS = 86_400
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
"""Plain ASCII decimals: float() would also read ``1_0``, ``nan``, ``inf`` and ``1e3``."""
MAX_COUNT = 999_999_999
_COUNT = re.compile(r"[0-9]{1,9}")
"""ASCII digits: int() would also read ``1_0`` and full-width digits (and fail, uncaught, on
digits such as superscripts that str.isdigit() accepts, or on thousands of digits)."""


@dataclass(frozen=True)
class SimulatedFault:
    step: Step
    code: str
    count: int | None
    """How many runs fail before the step succeeds; None: every run fails."""

    def fails(self, step: Step, run: int) -> bool:
        return step == self.step and (self.count is None or run <= self.count)


@dataclass(frozen=True)
class SimulatedOutage:
    """The system refuses connections for the step's first ``count`` attempts (transient)."""

    step: Step
    count: int

    def refuses(self, step: Step, attempt: int) -> bool:
        return step == self.step and attempt <= self.count


def line_delay(line: SalesOrderLine) -> float:
    raw = line.item.spec(DELAY_SPEC)
    if raw is None:
        return 0.0
    seconds = raw.strip()
    if not _SECONDS.fullmatch(seconds) or float(seconds) > MAX_DELAY_SECONDS:
        raise InputError(
            f"line {line.id}: {DELAY_SPEC} must be 0..{MAX_DELAY_SECONDS} seconds "
            f"(digits, optionally a decimal point), got {raw!r}"
        )
    return float(seconds)


def line_fault(line: SalesOrderLine) -> SimulatedFault | None:
    raw = line.item.spec(FAULT_SPEC)
    if raw is None:
        return None
    parts = raw.split(":")
    if len(parts) > 3 or parts[0] not in KNOWN_STEPS:
        raise InputError(
            f"line {line.id}: {FAULT_SPEC} must be STEP[:CODE[:COUNT]] with STEP one of "
            f"{', '.join(KNOWN_STEPS)}; got {raw!r}"
        )
    code = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_FAULT_CODE
    count: int | None = None
    if len(parts) == 3:
        if not _COUNT.fullmatch(parts[2]) or int(parts[2]) < 1:
            raise InputError(
                f"line {line.id}: {FAULT_SPEC} COUNT must be a whole number "
                f"1..{MAX_COUNT}, got {parts[2]!r}"
            )
        count = int(parts[2])
    return SimulatedFault(step=Step(parts[0]), code=code, count=count)


def line_outage(line: SalesOrderLine) -> SimulatedOutage | None:
    raw = line.item.spec(OUTAGE_SPEC)
    if raw is None:
        return None
    step, _, count = raw.partition(":")
    if step not in KNOWN_STEPS or not _COUNT.fullmatch(count) or int(count) < 1:
        raise InputError(
            f"line {line.id}: {OUTAGE_SPEC} must be STEP:COUNT with STEP one of "
            f"{', '.join(KNOWN_STEPS)} and COUNT 1..{MAX_COUNT}; got {raw!r}"
        )
    return SimulatedOutage(step=Step(step), count=int(count))


def validate_simulation(lines: list[SalesOrderLine]) -> None:
    """Refuse malformed simulator specifications at submit, not mid-fulfillment."""
    for line in lines:
        line_outage(line)
        for spec in (DELAY_SPEC, FAULT_SPEC, OUTAGE_SPEC):
            if sum(1 for s in line.item.specifications if s.name == spec) > 1:
                raise InputError(f"line {line.id}: {spec} is given more than once")
        line_delay(line)
        line_fault(line)


def _digits(seed: str, n: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[-n:].rjust(n, "0")


def activation_data(order_number: str, line: SalesOrderLine, target_system: str) -> dict[str, str]:
    """Data updates a provisioning system returns on activation."""
    seed = f"{order_number}/{line.id}"
    data = {"ServiceInstanceId": f"SI-{order_number}-{line.id}"}
    product_class = line.item.product_class or ""
    if "Plan" not in product_class:
        return data
    if target_system.startswith("Fixed"):
        data["AssignedNumber"] = "+3120" + _digits(seed, 7)
    elif target_system.startswith("Mobile"):
        data["MSISDN"] = "+316" + _digits(seed, 8)
        data["ICCID"] = "8931" + _digits(seed + "/sim", 15)
    elif target_system.startswith("Broadband"):
        octets = _digits(seed + "/ip", 6)
        data["IPAddress"] = f"100.{64 + int(octets[:2]) % 64}.{int(octets[2:4])}.{int(octets[4:])}"
    return data
