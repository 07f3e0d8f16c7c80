"""Custom search attributes: declared once for the server launcher, the workflows and `list`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORDER_NUMBER = SearchAttributeKey.for_keyword("OrderNumber")
ORDER_STATE = SearchAttributeKey.for_keyword("OrderState")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
ORDER_REVISION = SearchAttributeKey.for_int("OrderRevision")

ALL = (ORDER_NUMBER, ORDER_STATE, ORDER_STATUS, CUSTOMER_ID, ORDER_REVISION)


def indexed_value_types() -> dict[str, int]:
    """Name → IndexedValueType, for registering the attributes through the operator API."""
    return {key.name: int(key.indexed_value_type) for key in ALL}


def cli_registrations() -> list[str]:
    """``NAME=Type`` pairs as `temporal server start-dev --search-attribute` takes them."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    return [f"{key.name}={kinds[key.indexed_value_type.name]}" for key in ALL]
