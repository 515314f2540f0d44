"""A CloudEvent received over HTTP (structured or binary content mode, JSON data), checked
and read into ``ReceivedEvent``: the type event rules route and callback nodes that wait for
an event match.

The ``cloudevents`` SDK reads the binary mode's headers and checks the attributes; what it
does not do is done here first: required attributes that it would make up (``id``, ``time``),
data that it would silently keep as text when it is not JSON, keys given twice, and the limits
of what the log stores (lengths, NUL, depth).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson
from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import JsonValue

from flowlog.storable import storable_text, unstorable
from flowlog.workflow.errors import Code, WorkflowError

STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
SPECVERSION: Final = "1.0"
REQUIRED: Final = ("specversion", "id", "source", "type")
_INTEGERS: Final = range(-(2**31), 2**31)
"""CloudEvents' Integer type: a signed 32-bit number."""
LIMITS: Final = {"id": 256, "type": 256, "source": 1024, "subject": 1024,
                 "datacontenttype": 256, "dataschema": 1024}  # fmt: skip
"""The most characters of each attribute."""
MAX_EXTENSIONS: Final = 32
MAX_EXTENSION_VALUE: Final = 1024
MAX_DATA_DEPTH: Final = 64
"""How deeply the data's arrays and objects may nest (templates reach 32 segments)."""
_JSON_TYPE: Final = re.compile(r"^(application|text)/([a-z0-9\-.]+\+)?json$")
_CE_PREFIX: Final = "ce-"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A CloudEvent as flowlog received it, in the tenant of its sender."""

    tenant: str
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    data: JsonValue = None
    extensions: dict[str, Any] = field(default_factory=dict)
    position: int | None = None
    """Where its CloudEventReceived sits in the log, once recorded."""

    def values(self) -> dict[str, JsonValue]:
        """What templates (``{{data.x}}``, ``{{source}}``) may name."""
        return {
            "data": self.data, "id": self.id, "source": self.source, "type": self.type,
            "subject": self.subject, "time": None if self.time is None else self.time.isoformat(),
        }  # fmt: skip


def bad(message: str) -> WorkflowError:
    return WorkflowError(Code.BAD_CLOUDEVENT, message)


def unsupported(message: str) -> WorkflowError:
    return WorkflowError(Code.UNSUPPORTED_EVENT_MODE, message)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type: str | None) -> bool:
    return _JSON_TYPE.fullmatch(media_type(content_type)) is not None


def parse_http(tenant: str, headers: Sequence[tuple[str, str]], body: bytes) -> ReceivedEvent:
    """The CloudEvent of an HTTP request (its headers, in order, and its body); a
    WorkflowError (400 or 415) saying what is wrong when it is not one flowlog takes."""
    content_type = media_type(_header(headers, "content-type"))
    if content_type == BATCH:
        raise unsupported(
            "batch mode (application/cloudevents-batch+json) is not taken: send each event "
            "in its own request"
        )
    if content_type == STRUCTURED:
        return _structured(tenant, body)
    if content_type.startswith("application/cloudevents"):
        raise unsupported(
            f"the event format {content_type} is not taken: structured mode takes {STRUCTURED} only"
        )
    if any(name.lower().startswith(_CE_PREFIX) for name, _ in headers):
        return _binary(tenant, headers, body)
    raise unsupported(
        f"not a CloudEvent: send it in structured mode (Content-Type: {STRUCTURED}) or in "
        "binary mode (ce-specversion, ce-id, ce-source and ce-type headers, the data as the "
        "JSON body)"
    )


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    found = [value for key, value in headers if key.lower() == name]
    return found[0] if found else None


def _json(body: bytes, what: str) -> Any:
    # Keys given twice are refused by the API before (app/api/json_keys.py).
    try:
        orjson.loads(body)  # strict: UTF-8, no NaN, at most 1024 levels
    except orjson.JSONDecodeError as exc:
        raise bad(f"{what} is not JSON: {str(exc)[:200]}") from None
    try:
        # Read again to keep integers whole: orjson reads those beyond 64 bits as floats, and
        # they must be refused (the log cannot store them), not rounded.
        return json.loads(body)
    except RecursionError:
        raise bad(f"{what} nests too deep") from None


def _structured(tenant: str, body: bytes) -> ReceivedEvent:
    document = _json(body, "the body")
    if not isinstance(document, dict):
        raise bad("the body must be a JSON object (a CloudEvent in structured mode)")
    if "data_base64" in document:
        raise unsupported("data_base64 (binary data) is not taken: flowlog takes JSON data only")
    data = document.pop("data", None)
    _missing(document)
    if "time" in document:
        if not isinstance(document["time"], str):
            raise bad("time: must be an RFC 3339 time")
        document["time"] = _time(document["time"])
    contenttype = document.get("datacontenttype")
    if isinstance(contenttype, str) and not is_json_type(contenttype):
        raise unsupported(
            f"datacontenttype {contenttype[:100]!r} is not JSON: flowlog takes JSON data only"
        )
    return _checked(tenant, document, data)


def _binary(tenant: str, headers: Sequence[tuple[str, str]], body: bytes) -> ReceivedEvent:
    names = [name.lower() for name, _ in headers]
    twice = sorted({n for n in names if n.startswith(_CE_PREFIX) and names.count(n) > 1})
    if twice:
        raise bad(f"headers given twice: {', '.join(twice)}")
    contenttype = _header(headers, "content-type")
    if body and not is_json_type(contenttype or "application/json"):
        raise unsupported(
            f"the data's Content-Type {(contenttype or '')[:100]!r} is not JSON: binary mode "
            "takes JSON data only (Content-Type: application/json)"
        )
    data = _json(body, "the body (the event's data)") if body else None
    wanted = {name: value for name, value in headers
              if name.lower().startswith(_CE_PREFIX) or name.lower() == "content-type"}  # fmt: skip
    present = {name.lower()[len(_CE_PREFIX) :] for name in wanted}
    _missing(dict.fromkeys(present & set(REQUIRED), ""), binary=True)
    try:
        event = from_binary(HTTPMessage(wanted, b""), JSONFormat(), CloudEvent)
    except CloudEventValidationError as exc:
        raise bad(_validation(exc)) from None
    except (ValueError, OverflowError) as exc:  # a time isoparse cannot read
        raise bad(f"an attribute cannot be read: {str(exc)[:200]}") from None
    attributes = dict(event.get_attributes())
    if "ce-time" not in {name.lower() for name in wanted}:
        attributes.pop("time", None)  # made up by the SDK: the sender gave none
    return _checked(tenant, attributes, data)


def _missing(attributes: dict[str, Any], *, binary: bool = False) -> None:
    """Refuses an event without a required attribute (the SDK would make up its id)."""
    absent = [name for name in REQUIRED if name not in attributes]
    if absent:
        spelled = [f"ce-{name}" if binary else name for name in absent]
        raise bad(f"required attributes missing: {', '.join(spelled)}")


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise bad("time: must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise bad("time: must have a time zone offset (RFC 3339)")
    return moment


def _validation(exc: CloudEventValidationError) -> str:
    problems = []
    for name, errors in sorted(exc.errors.items()):
        first: BaseCloudEventException = errors[0]
        problems.append(f"{str(name)[:64]}: {str(first)[:200]}")
    return "; ".join(problems)


def _checked(tenant: str, attributes: dict[str, Any], data: Any) -> ReceivedEvent:
    """The SDK's checks of the attributes, then flowlog's limits."""
    if attributes.get("specversion") != SPECVERSION:
        raise bad(f"specversion: must be {SPECVERSION!r} (CloudEvents 1.0)")
    try:
        event = CloudEvent(dict(attributes), data)
    except CloudEventValidationError as exc:
        raise bad(_validation(exc)) from None
    given = event.get_attributes()
    for name, longest in LIMITS.items():
        value = given.get(name)
        if isinstance(value, str) and len(value) > longest:
            raise bad(f"{name}: at most {longest} characters")
    extensions = {name: value for name, value in given.items() if name not in _CORE}
    if len(extensions) > MAX_EXTENSIONS:
        raise bad(f"at most {MAX_EXTENSIONS} extension attributes")
    for name, value in extensions.items():
        if not isinstance(value, str | bool | int) or (
            isinstance(value, str) and len(value) > MAX_EXTENSION_VALUE
        ) or (isinstance(value, int) and value not in _INTEGERS):  # fmt: skip
            raise bad(
                f"{name[:64]}: an extension attribute is text (at most {MAX_EXTENSION_VALUE} "
                "characters), an integer (32 bits, as CloudEvents' Integer) or a boolean"
            )
    for name, value in given.items():
        if isinstance(value, str) and not storable_text(value):
            raise bad(f"{name[:64]}: may not contain NUL characters or lone surrogates")
    problem = unstorable(data, "data")
    if problem is not None:
        raise bad(f"the data cannot be stored: {problem}")
    if _depth(data) > MAX_DATA_DEPTH:
        raise bad(f"data: nests deeper than {MAX_DATA_DEPTH} arrays and objects")
    time = given.get("time") if "time" in attributes else None
    return ReceivedEvent(
        tenant=tenant, id=given["id"], source=given["source"], type=given["type"],
        subject=given.get("subject"), time=time, datacontenttype=given.get("datacontenttype"),
        data=data, extensions=extensions,
    )  # fmt: skip


_CORE: Final = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
)


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (without recursion: data may nest as
    deep as the JSON parser allows)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DATA_DEPTH:
                return level
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
