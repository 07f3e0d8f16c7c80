"""Business keys → workflow IDs, message IDs and file names: injective over arbitrary strings
(each property decodes the ID back to what it was made of), safe, and short enough."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2a import ids
from o2a.catalog import load_catalog
from o2a.decomposition import component_id
from o2a.errors import InputError
from o2a.models import Step

PROPERTY = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
# Every code point, lone surrogates included (JSON can carry them).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))
REVISIONS = st.integers(min_value=0, max_value=10**12)
RUNS = st.integers(min_value=1, max_value=10**6)
SEQUENCES = st.integers(min_value=0, max_value=10**6)
SAFE_ID = re.compile(r"[A-Za-z0-9_~-]*")


def unescape(escaped: str) -> str:
    """The inverse of ``ids.escape``: a left inverse proves it injective."""
    out = bytearray()
    i = 0
    while i < len(escaped):
        if escaped[i] == "~":
            out.append(int(escaped[i + 1 : i + 3], 16))
            i += 3
        else:
            out += escaped[i].encode()
            i += 1
    return out.decode("utf-8", "surrogatepass")


def unescape_component(escaped: str) -> str:
    """The inverse of ``ids.escape_component``."""
    out = []
    i = 0
    while i < len(escaped):
        if escaped.startswith("__", i):
            out.append(chr(int(escaped[i + 2 : i + 8], 16)))
            i += 8
        elif escaped[i] == "_":
            out.append(chr(int(escaped[i + 1 : i + 5], 16)))
            i += 5
        else:
            out.append(escaped[i])
            i += 1
    return "".join(out)


def parse_message_id(message_id: str, suffixed: bool) -> tuple[str, str, int, int, str, str]:
    """(kind, order number, revision, run, component ID, last part) of a message ID."""
    kind, order, attempt, rest = message_id.split(".", 3)
    component, last = rest.rsplit(".", 1) if suffixed else (rest, "")
    match = re.fullmatch(r"r(\d+)(?:-n(\d+))?", attempt)
    assert match, attempt
    run = int(match[2]) if match[2] else 1
    assert run != 1 or match[2] is None, "run 1 has no marker"
    return kind, unescape(order), int(match[1]), run, component, last


# --- escaping -------------------------------------------------------------------------------------


def test_the_order_numbers_of_the_issue_no_longer_collide():
    numbers = ["HC/1", "HC 1", "HC_1", "HC:1", "HC.1", "HC~2F1", "HC~1"]
    assert len({ids.escape(n) for n in numbers}) == len(numbers)
    assert len({ids.order_workflow_id(n) for n in numbers}) == len(numbers)
    unicode = ["HN-Ü14-注文", "HN-_14-__", "HN-Ü14-注注"]
    assert len({ids.provisioning_order_message_id(n, 1, "C") for n in unicode}) == 3
    assert ids.escape("HN-Ü14-注文") == "HN-~C3~9C14-~E6~B3~A8~E6~96~87"


@given(ANY_TEXT)
@PROPERTY
def test_escape_is_injective_and_safe(text: str):
    escaped = ids.escape(text)
    assert unescape(escaped) == text
    assert SAFE_ID.fullmatch(escaped), escaped


@given(st.text(string.ascii_letters + string.digits + "_-"))
@PROPERTY
def test_order_numbers_of_safe_characters_keep_their_ids(text: str):
    """Recorded histories hold child workflow IDs made from them (tests/histories/)."""
    assert ids.escape(text) == text


def test_recorded_ids_are_unchanged():
    number = "REPLAY-cancelled_mid_flight-T-E467F1CDBA"
    assert ids.order_workflow_id(number) == f"order-{number}"
    assert ids.provisioning_workflow_id(number, "Provision.X.bundle-1.1") == (
        f"order-{number}/Provision.X.bundle-1.1"
    )
    assert component_id("Provision", "X", "bundle-a_b Ü") == "Provision.X.bundle-a_005Fb_0020_00DC"


# --- component IDs --------------------------------------------------------------------------------


def test_component_ids_beyond_the_bmp_are_unambiguous():
    emoji = component_id("Provision", "X", "line-\U0001f600")
    lookalike = component_id("Provision", "X", "line-\u1f60" + "0")
    assert emoji != lookalike
    assert emoji == "Provision.X.line-__01F600"


@given(ANY_TEXT, ANY_TEXT)
@PROPERTY
def test_component_id_is_injective_over_groups(group: str, other: str):
    made = component_id("Provision", "FixedProvisioningSystem", group)
    assert unescape_component(made) == f"Provision.FixedProvisioningSystem.{group}"
    assert re.fullmatch(r"[A-Za-z0-9._-]*", made), made
    if other != group:
        assert component_id("Provision", "FixedProvisioningSystem", other) != made


# --- workflow and message IDs ---------------------------------------------------------------------


@given(ANY_TEXT, ANY_TEXT, ANY_TEXT)
@PROPERTY
def test_no_order_workflow_id_is_a_childs(order_number: str, parent: str, line_id: str):
    child = ids.provisioning_workflow_id(parent, component_id("Provision", "X", f"line-{line_id}"))
    assert ids.order_workflow_id(order_number) != child
    assert unescape(ids.order_workflow_id(order_number).removeprefix("order-")) == order_number
    prefix, component = child.split("/", 1)
    assert (unescape(prefix.removeprefix("order-")), component) == (
        parent,
        component_id("Provision", "X", f"line-{line_id}"),
    )


LINE_COMPONENTS = ANY_TEXT.map(lambda line_id: component_id("Provision", "X", f"line-{line_id}"))


@given(ANY_TEXT, REVISIONS, LINE_COMPONENTS, RUNS, SEQUENCES, st.sampled_from(list(Step)))
@PROPERTY
def test_message_ids_decode_to_what_they_name(
    order_number: str, revision: int, component: str, run: int, sequence: int, step: Step
):
    """A component ID may end like a run marker (``.n2``): the run sits in the revision part."""
    made = {
        "PPO": (ids.provisioning_order_message_id(order_number, revision, component, run), ""),
        "PFOU": (
            ids.fulfillment_update_message_id(order_number, revision, component, sequence, run),
            f"u{sequence:03d}",
        ),
        "FR": (ids.fulfillment_request_id(order_number, revision, component, run, step), step),
        "JEOP": (
            ids.jeopardy_message_id(order_number, revision, component, "Critical", run),
            "Critical",
        ),
    }
    for kind, (message_id, last) in made.items():
        assert parse_message_id(message_id, suffixed=kind != "PPO") == (
            kind,
            order_number,
            revision,
            run,
            component,
            last,
        )
        assert SAFE_ID.fullmatch(message_id.replace(".", "")), message_id
    uso = ids.sales_order_update_message_id(order_number, revision, sequence)
    assert parse_message_id(uso, suffixed=False) == (
        "USO",
        order_number,
        revision,
        1,
        f"u{sequence:03d}",
        "",
    )


def test_a_component_named_like_a_rerun_is_not_one():
    dotted = component_id("Provision", "X", "line-1.n2")
    assert ids.provisioning_order_message_id("O", 1, dotted) != (
        ids.provisioning_order_message_id("O", 1, component_id("Provision", "X", "line-1"), run=2)
    )


@given(ANY_TEXT, st.integers(min_value=1, max_value=10**6))
@PROPERTY
def test_fallout_message_ids_decode_to_their_order(order_number: str, sequence: int):
    fallout = ids.fallout_id(order_number, sequence)
    for make, kind in ((ids.fault_message_id, "FAULT"), (ids.trouble_ticket_message_id, "TT")):
        prefix, escaped = make(fallout).split(".")
        number, _, digits = unescape(escaped).rpartition("-F")
        assert (prefix, number, int(digits)) == (kind, order_number, sequence)


def test_web_ui_link_quotes_the_workflow_id():
    workflow_id = ids.provisioning_workflow_id("HC/1", "Provision.X.line-1")
    assert ids.web_ui_link("http://ui", "default", workflow_id) == (
        "http://ui/namespaces/default/workflows/order-HC~2F1%2FProvision.X.line-1"
    )


# --- limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_number", "line_ids", "message"),
    [
        ("", ["1"], "order number is empty"),
        ("A\nB", ["1"], r"order number 'A\\nB': non-printable character '\\n'"),
        ("A\x00", ["1"], "non-printable character '\\\\x00'"),
        ("A\tB", ["1"], "non-printable"),
        ("A" * 81, ["1"], r"order number 'A{40}'\.\.\.: too long, 81 bytes .*\(at most 80\)"),
        ("注" * 27, ["1"], "too long, 243 bytes"),
        ("A", ["1", ""], "line ID is empty"),
        ("A", ["1\r"], r"line ID '1\\r': non-printable"),
        ("A", ["_" * 13], r"line ID '_{13}': too long, 65 bytes .*\(at most 64\)"),
    ],
)
def test_unusable_business_keys_are_refused_in_one_line(
    order_number: str, line_ids: list[str], message: str
):
    with pytest.raises(InputError, match=message) as refused:
        ids.check_business_keys(order_number, line_ids)
    assert "\n" not in str(refused.value)


def test_keys_at_the_limits_are_accepted():
    ids.check_business_keys("A" * 80, ["1" * 64, "é" * 12])


def test_the_longest_message_id_fits_a_file_name():
    """The budget behind the limits: everything else in the longest message IDs at its
    longest, with a catalog whose function and target take 56 bytes."""
    catalog = load_catalog()
    function, target = max(
        ((f, t) for p in catalog.fulfillment_patterns.values() for f, t in p.functions.items()),
        key=lambda pair: len(pair[0]) + len(pair[1]),
    )
    function += "x" * (55 - len(function) - len(target))
    component = component_id(function, target, "bundle-" + "1" * ids.MAX_LINE_ID)
    order_number = "A" * ids.MAX_ORDER_NUMBER
    revision, run = 10**10 - 1, 10**6 - 1
    longest = [
        ids.fulfillment_request_id(order_number, revision, component, run, max(Step, key=len)),
        ids.fulfillment_update_message_id(order_number, revision, component, run, run),
        ids.jeopardy_message_id(order_number, revision, component, "Critical", run),
    ]
    for message_id in longest:
        assert len(f"{message_id}.xml".encode()) <= ids.MAX_FILE_NAME, message_id
    assert len(ids.provisioning_workflow_id(order_number, component)) < 300  # Temporal's: 1000


@given(ANY_TEXT, ANY_TEXT)
@PROPERTY
def test_accepted_keys_give_file_names_that_fit(order_number: str, line_id: str):
    try:
        ids.check_business_keys(order_number, [line_id])
    except InputError:
        return
    component = component_id("FulfillBilling", "BillingSystem", f"bundle-{line_id}")
    message_id = ids.fulfillment_request_id(order_number, 999, component, 9, "undo-activate")
    assert len(f"{message_id}.xml".encode()) <= ids.MAX_FILE_NAME
