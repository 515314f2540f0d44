"""What every request and answer builds on: ``Request`` (unknown fields refused, values
storable) and ``Response``, and the types of their fields that are not plain text or numbers:
a flow's id, a context key and value, an ISO 8601 time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flowlog.flow_ids import FLOW_ID_PATTERN, NOT_A_FLOW_ID, is_flow_id
from flowlog.storable import JSON_INTEGERS, unstorable
from flowlog.times import parse_utc

MAX_BODY: Final = 1024 * 1024
"""The largest request body the API reads, in bytes (a larger one is refused with 413)."""


def _flow_id(value: str) -> str:
    if not is_flow_id(value):
        raise PydanticCustomError("flow_id", NOT_A_FLOW_ID)
    return value


FlowId = Annotated[
    str, AfterValidator(_flow_id), WithJsonSchema({"type": "string", "pattern": FLOW_ID_PATTERN})
]
"""A flow's id in a request: one flowlog could have made (app/flow_ids.py), else 400."""


JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value whose numbers are within the range of 64-bit integers and "
    "whose text holds no NUL (a number beyond it is refused, however it is written: JSON "
    "cannot tell 1e30 from an integer).",
    "anyOf": [
        {"type": "number", "minimum": JSON_INTEGERS.start, "maximum": JSON_INTEGERS.stop - 1},
        {"type": "string"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
    ],
}
"""The OpenAPI schema of a context value (a component, ``JsonValue``: it refers to itself)."""
JSON_VALUE_MARK = {"x-flowlog-json-value": True}
"""Where a context value's schema goes; the OpenAPI builder puts the ``JsonValue`` reference
there (pydantic would try to resolve the reference itself, and cannot)."""
JsonValue = Annotated[Any, WithJsonSchema(JSON_VALUE_MARK)]
"""A value a request puts in a flow's context: any JSON, checked storable by ``Request``."""


def _iso_datetime(value: Any) -> Any:
    """ISO 8601 text only (see parse_utc), in UTC."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time")
    return parse_utc(value)


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime)]


def _json_number(value: Any) -> Any:
    # JSON's true and "9" are no numbers (pydantic would read them as 1 and 9); 41.0 is the
    # integer 41, as JSON Schema says.
    if isinstance(value, bool | str):
        raise ValueError("a number, not text, true or false")
    return value


JSON_NUMBER = BeforeValidator(_json_number)
"""On a number field of a request (``Annotated[int, JSON_NUMBER]``): only JSON numbers."""


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _storable(self) -> Request:
        if unstorable(self, numbers_in_range=True) is not None:
            raise ValueError(
                "values must be storable: no NUL characters, lone surrogates, NaN, Infinity, "
                "or numbers beyond 64 bits (written as integers or not: 1e30 too)"
            )
        return self


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)


RESERVED_CONTEXT_KEYS = frozenset({"traceId", "userId", "tenantId"})
"""Set by flowlog from the request (trace id, token): a caller must not pose as another.
FlowContext's TRACE_ID, USER_ID and TENANT_ID, spelled out: importing flowlog.workflow would
load the whole engine into every client of this package."""


def _unreserved(key: str) -> str:
    if key in RESERVED_CONTEXT_KEYS:
        raise ValueError(f"context key {key!r} is set by flowlog, not by a request")
    return key


ContextKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        json_schema_extra={"not": {"enum": sorted(RESERVED_CONTEXT_KEYS)}},
    ),
    AfterValidator(_unreserved),
]


def max_length(model: type[BaseModel], field: str) -> int:
    """The most characters ``field`` of ``model`` takes (its ``max_length``)."""
    for rule in model.model_fields[field].metadata:  # pydantic's MaxLen (annotated-types)
        length = getattr(rule, "max_length", None)
        if isinstance(length, int):
            return length
    raise LookupError(f"{model.__name__}.{field} has no max_length")
