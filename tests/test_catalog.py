"""The catalog: the shipped one is complete, broken ones are refused at load."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from o2a.catalog import Catalog, Granularity, load_catalog
from o2a.errors import InputError
from o2a.models import ComponentKind, Step

DESIGN_CLASSES = {
    "Broadband Service Plan Class": "Service.Broadband",
    "Broadband Service Feature Class": "Service.Broadband",
    "Fixed Service Plan Class": "Service.Fixed",
    "Fixed Service Feature Class": "Service.Fixed",
    "Mobile Service Plan Class": "Service.Mobile",
    "Prepaid Mobile Service Plan Class": "Service.Mobile",
    "Mobile Service Feature Class": "Service.Mobile",
    "CPE Device Class": "Device.Shippable",
    "Discount Class": "Non.Service.Offer",
}


def shipped_json() -> dict[str, Any]:
    text = resources.files("o2a").joinpath("data/catalog.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_shipped_catalog_maps_the_design_classes() -> None:
    catalog = load_catalog()
    for product_class, pattern in DESIGN_CLASSES.items():
        assert catalog.product_classes.get(product_class) == pattern, product_class


def test_shipped_catalog_structure() -> None:
    catalog = load_catalog()
    assert {"OFFER", "BUNDLE", "SERVICE BUNDLE"} <= catalog.structural_type_codes
    assert catalog.structural_pattern == "Non.Service.Offer"
    fns = catalog.fulfillment_functions
    assert {"SyncCustomer", "Provision", "Ship", "InitiateBilling", "FulfillBilling"} <= set(fns)
    assert fns["Provision"].kind is ComponentKind.PROVISION
    assert fns["Provision"].point_of_no_return is Step.ACTIVATE
    assert fns["Provision"].granularity is Granularity.BUNDLE
    assert fns["SyncCustomer"].granularity is Granularity.WHOLE_ORDER
    patterns = catalog.fulfillment_patterns
    assert patterns["Service.Broadband"].functions["Provision"] == "BroadbandProvisioningSystem"
    assert patterns["Service.Fixed"].functions["Provision"] == "FixedProvisioningSystem"
    assert patterns["Service.Mobile"].functions["Provision"] == "MobileProvisioningSystem"
    assert patterns["Device.Shippable"].functions["Ship"] == "ShippingSystem"
    assert "Provision" not in patterns["Non.Service.Offer"].functions
    assert [d.function for d in fns["InitiateBilling"].depends_on] == ["SyncCustomer"]
    assert {d.function for d in fns["FulfillBilling"].depends_on} >= {
        "InitiateBilling",
        "Provision",
        "Ship",
    }


def test_function_order_respects_dependencies() -> None:
    catalog = load_catalog()
    order = catalog.function_order()
    assert sorted(order) == sorted(catalog.fulfillment_functions)
    for name, fn in catalog.fulfillment_functions.items():
        for dep in fn.depends_on:
            assert order.index(dep.function) < order.index(name)


def test_catalog_from_a_path_equals_the_shipped_one(tmp_path: Path) -> None:
    assert load_catalog(write(tmp_path, shipped_json())) == load_catalog()


def test_catalog_is_frozen() -> None:
    catalog = load_catalog()
    with pytest.raises(ValueError):
        catalog.version = "other"  # type: ignore[misc]


def _unknown_function(d: dict[str, Any]) -> None:
    d["fulfillment_patterns"]["Service.Fixed"]["functions"]["Teleport"] = "BeamSystem"


def _unknown_pattern(d: dict[str, Any]) -> None:
    d["product_classes"]["Satellite Service Plan Class"] = "Service.Satellite"


def _cycle(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["SyncCustomer"]["depends_on"] = [
        {"function": "FulfillBilling", "scope": "order"}
    ]


def _self_cycle(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Ship"]["depends_on"] = [{"function": "Ship", "scope": "order"}]


def _unknown_dependency(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Ship"]["depends_on"] = [{"function": "Pack", "scope": "order"}]


def _unknown_structural_pattern(d: dict[str, Any]) -> None:
    d["structural_pattern"] = "Nothing.At.All"


def _bad_granularity(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Provision"]["granularity"] = "Planet"


def _zero_duration(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Provision"]["expected_duration_seconds"] = 0


def _extra_field(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Provision"]["colour"] = "blue"


def _empty_pattern(d: dict[str, Any]) -> None:
    d["fulfillment_patterns"]["Service.Fixed"]["functions"] = {}


def _missing_section(d: dict[str, Any]) -> None:
    del d["fulfillment_functions"]


def _unknown_ponr_step(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Provision"]["point_of_no_return"] = "teleport"


def _ponr_step_of_another_function(d: dict[str, Any]) -> None:
    d["fulfillment_functions"]["Provision"]["point_of_no_return"] = "billing"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_unknown_function, "pattern 'Service.Fixed' uses unknown function 'Teleport'"),
        (_unknown_pattern, "'Satellite Service Plan Class' maps to unknown 'Service.Satellite'"),
        (_cycle, "cycle"),
        (_self_cycle, "cycle through 'Ship'"),
        (_unknown_dependency, "depends on unknown 'Pack'"),
        (_unknown_structural_pattern, "'Nothing.At.All' is not a pattern"),
        (_bad_granularity, "granularity"),
        (_zero_duration, "expected_duration_seconds"),
        (_extra_field, "colour"),
        (_empty_pattern, "functions"),
        (_missing_section, "fulfillment_functions"),
        (_unknown_ponr_step, "point_of_no_return"),
        (
            _ponr_step_of_another_function,
            "point_of_no_return 'billing' is not a step of a provision function "
            "(design, activate, verify)",
        ),
    ],
)
def test_broken_catalog_is_rejected(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = copy.deepcopy(shipped_json())
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_catalog(path)
    message = str(info.value)
    assert expected in message
    assert message.startswith(f"catalog {path}")


def test_invalid_json_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"version": "1", ', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        load_catalog(path)


def test_missing_catalog_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.json"):
        load_catalog(tmp_path / "nope.json")


def test_a_valid_variant_is_accepted(tmp_path: Path) -> None:
    data = copy.deepcopy(shipped_json())
    data["product_classes"]["Satellite Service Plan Class"] = "Service.Satellite"
    data["fulfillment_patterns"]["Service.Satellite"] = {
        "functions": {"SyncCustomer": "BillingSystem", "Provision": "SatelliteSystem"}
    }
    catalog = load_catalog(write(tmp_path, data))
    assert isinstance(catalog, Catalog)
    assert catalog.product_classes["Satellite Service Plan Class"] == "Service.Satellite"
