"""The product catalog: product class → fulfillment pattern → functions → target systems.

The catalog is data (``o2a/data/catalog.json`` or ``O2A_CATALOG``), validated on load so a
broken catalog fails the worker at start, not an order at run time.
"""

from __future__ import annotations

import json
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from o2a.errors import InputError
from o2a.models import KIND_STEPS, ComponentKind, Step


class Granularity(StrEnum):
    WHOLE_ORDER = "WholeOrder"
    BUNDLE = "Bundle"
    LINE = "Line"


class DependencyScope(StrEnum):
    ORDER = "order"
    SAME_LINES = "same_lines"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionDependency(_Strict):
    function: str
    scope: DependencyScope


class FulfillmentFunction(_Strict):
    kind: ComponentKind
    granularity: Granularity
    expected_duration_seconds: float = Field(gt=0)
    point_of_no_return: Step | None = None
    point_of_no_return_kind: Literal["soft", "hard"] = "soft"
    start_milestone: str | None = None
    complete_milestone: str | None = None
    depends_on: tuple[FunctionDependency, ...] = ()

    @model_validator(mode="after")
    def _point_of_no_return_is_a_step(self) -> Self:
        """A point of no return the function never reaches would never be passed."""
        steps = KIND_STEPS[self.kind]
        if self.point_of_no_return is not None and self.point_of_no_return not in steps:
            raise ValueError(
                f"point_of_no_return {self.point_of_no_return.value!r} is not a step of a "
                f"{self.kind.value} function ({', '.join(s.value for s in steps)})"
            )
        return self


class FulfillmentPattern(_Strict):
    functions: dict[str, str] = Field(min_length=1)
    """function name → target system"""


class Catalog(_Strict):
    version: str
    structural_type_codes: frozenset[str]
    structural_pattern: str
    product_classes: dict[str, str]
    fulfillment_patterns: dict[str, FulfillmentPattern]
    fulfillment_functions: dict[str, FulfillmentFunction]

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        patterns = set(self.fulfillment_patterns)
        functions = self.fulfillment_functions
        if self.structural_pattern not in patterns:
            raise ValueError(f"structural_pattern {self.structural_pattern!r} is not a pattern")
        for product_class, pattern in self.product_classes.items():
            if pattern not in patterns:
                raise ValueError(f"product class {product_class!r} maps to unknown {pattern!r}")
        for name, pattern_def in self.fulfillment_patterns.items():
            for function in pattern_def.functions:
                if function not in functions:
                    raise ValueError(f"pattern {name!r} uses unknown function {function!r}")
        for name, function_def in functions.items():
            for dep in function_def.depends_on:
                if dep.function not in functions:
                    raise ValueError(f"function {name!r} depends on unknown {dep.function!r}")
        self._check_acyclic()
        return self

    def _check_acyclic(self) -> None:
        visiting: set[str] = set()
        done: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                raise ValueError(f"function dependencies form a cycle through {name!r}")
            visiting.add(name)
            for dep in self.fulfillment_functions[name].depends_on:
                visit(dep.function)
            visiting.discard(name)
            done.add(name)

        for name in self.fulfillment_functions:
            visit(name)

    def function_order(self) -> list[str]:
        """Functions in dependency order, so plans list components the way they run."""
        ordered: list[str] = []

        def visit(name: str) -> None:
            if name in ordered:
                return
            for dep in self.fulfillment_functions[name].depends_on:
                visit(dep.function)
            ordered.append(name)

        for name in self.fulfillment_functions:
            visit(name)
        return ordered


SHIPPED_CATALOG = "data/catalog.json"


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog; ``None`` means the shipped one."""
    if path is None:
        text = resources.files("o2a").joinpath(SHIPPED_CATALOG).read_text(encoding="utf-8")
        source = "shipped catalog"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"catalog {path}: {exc.strerror}") from exc
        source = f"catalog {path}"
    try:
        return Catalog.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except ValidationError as exc:
        raise InputError(f"{source}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
