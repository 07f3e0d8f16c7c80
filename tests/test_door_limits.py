"""The simulator specifications at the door: plain ASCII numbers only, in range, and every
refusal an ``InputError`` (anything else escapes the CLI's exit 2 as a traceback)."""

from __future__ import annotations

import pytest

from o2a.errors import InputError
from o2a.models import ItemReference, SalesOrderLine, Specification, Step
from o2a.simulator import SimulatedFault, SimulatedOutage, line_delay, line_fault, line_outage


def spec_line(name: str, value: str) -> SalesOrderLine:
    return SalesOrderLine(
        id="7",
        item=ItemReference(name="Plan", specifications=[Specification(name=name, value=value)]),
    )


NOT_ASCII_COUNTS = ["1_0", "\uff11\uff12", "\u00b2", "\u0661", "+1", "9" * 5000, "1000000000"]
"""Underscores and full-width digits int() reads; a superscript and 5,000 digits on which
int() raises ValueError; past the 999,999,999 cap."""


@pytest.mark.parametrize(
    "raw", ["1_0", "nan", "NaN", "inf", "-inf", "-1", "-0", "1e3", "\uff11", "0x10", ".5", "1."]
)
def test_delay_must_be_plain_seconds(raw: str) -> None:
    with pytest.raises(InputError, match=r"^line 7: SimulatedDelay must be 0\.\.86400 seconds"):
        line_delay(spec_line("SimulatedDelay", raw))


@pytest.mark.parametrize(("raw", "seconds"), [("0", 0.0), ("0.25", 0.25), (" 86400 ", 86400.0)])
def test_delay_in_seconds(raw: str, seconds: float) -> None:
    assert line_delay(spec_line("SimulatedDelay", raw)) == seconds


@pytest.mark.parametrize("count", NOT_ASCII_COUNTS)
def test_fault_count_must_be_ascii_digits(count: str) -> None:
    with pytest.raises(InputError, match=r"^line 7: SimulatedFault COUNT must be a whole number"):
        line_fault(spec_line("SimulatedFault", f"activate:X:{count}"))


@pytest.mark.parametrize("count", NOT_ASCII_COUNTS)
def test_outage_count_must_be_ascii_digits(count: str) -> None:
    with pytest.raises(InputError, match=r"^line 7: SimulatedOutage must be STEP:COUNT"):
        line_outage(spec_line("SimulatedOutage", f"activate:{count}"))


def test_largest_counts_are_read() -> None:
    fault = line_fault(spec_line("SimulatedFault", "activate:X:999999999"))
    assert fault == SimulatedFault(Step.ACTIVATE, "X", 999_999_999)
    outage = line_outage(spec_line("SimulatedOutage", "verify:007"))
    assert outage == SimulatedOutage(Step.VERIFY, 7)
