"""Reading a CloudEvent from HTTP (app/triggers/cloudevent.py): both content modes, built by
the ``cloudevents`` SDK as senders do, and everything flowlog refuses, with why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat

from flowlog.triggers.cloudevent import MAX_DATA_DEPTH, parse_http
from flowlog.workflow.errors import Code, WorkflowError
from tests.triggers.helpers import cloudevent

WHEN = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)


def _parse(headers: dict[str, str], body: bytes) -> Any:
    return parse_http("tenant-a", list(headers.items()), body)


@pytest.mark.parametrize("binary", [False, True])
def test_both_modes_read_the_same_event(binary: bool) -> None:
    event = cloudevent("e-9", data={"clusterId": "c-1", "n": 2}, subject="s", time=WHEN,
                       region="eu1")  # fmt: skip
    message = (to_binary if binary else to_structured)(event, JSONFormat())
    read = _parse(message.headers, message.body)
    assert (read.tenant, read.id, read.source, read.type, read.subject, read.time) == (
        "tenant-a",
        "e-9",
        "/clusters",
        "backup.requested",
        "s",
        WHEN,
    )
    assert read.data == {"clusterId": "c-1", "n": 2}
    assert read.extensions == {"region": "eu1"}
    assert read.datacontenttype == "application/json"


def test_an_event_without_time_or_data_has_none() -> None:
    body = orjson.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t"})
    read = _parse({"Content-Type": "application/cloudevents+json"}, body)
    assert read.time is None
    assert read.data is None
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}
    read = _parse(headers, b"")
    assert read.time is None
    assert read.data is None


def _refused(headers: dict[str, str], body: bytes, code: Code) -> str:
    with pytest.raises(WorkflowError) as refusal:
        _parse(headers, body)
    assert refusal.value.code == code, refusal.value.message
    return refusal.value.message


STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BASE = {"specversion": "1.0", "id": "1", "source": "s", "type": "t"}


@pytest.mark.parametrize("missing", ["specversion", "id", "source", "type"])
def test_a_missing_required_attribute_is_named(missing: str) -> None:
    body = orjson.dumps({k: v for k, v in BASE.items() if k != missing})
    assert missing in _refused(STRUCTURED, body, Code.BAD_CLOUDEVENT)
    headers = {f"ce-{k}": v for k, v in BASE.items() if k != missing}
    assert f"ce-{missing}" in _refused(headers, b"{}", Code.BAD_CLOUDEVENT)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"id": ""}, "id"),
        ({"source": 5}, "source"),
        ({"id": "x" * 257}, "id: at most 256"),
        ({"type": "t" * 257}, "type: at most 256"),
        ({"source": "s" * 1025}, "source: at most 1024"),
        ({"subject": "s" * 1025}, "subject: at most 1024"),
        ({"id": "a\x00b"}, "NUL"),
        ({"time": "yesterday"}, "time"),
        ({"time": "2026-12-06T10:00:00"}, "time zone"),
        ({"Bad-Name": "x"}, "Bad-Name"),
        ({"ext": {"nested": 1}}, "extension attribute"),
        ({"ext": "x" * 1025}, "extension attribute"),
        ({"ext": 2**31}, "32 bits"),
        ({"ext": 99999999999999999999999}, "32 bits"),
        ({"data": {"k": "a\x00b"}}, "data"),
        ({"data": 2**64}, "data"),
    ],
)
def test_bad_attributes_and_data_are_refused_with_why(changes: dict[str, Any], words: str) -> None:
    body = json.dumps({**BASE, **changes}).encode()
    assert words in _refused(STRUCTURED, body, Code.BAD_CLOUDEVENT)


def test_too_many_extensions_are_refused() -> None:
    many = {f"x{i}": "v" for i in range(33)}
    assert "at most 32" in _refused(STRUCTURED, orjson.dumps({**BASE, **many}),
                                    Code.BAD_CLOUDEVENT)  # fmt: skip


def test_data_nested_too_deep_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DATA_DEPTH):
        deep = [deep]
    _parse(STRUCTURED, orjson.dumps({**BASE, "data": deep}))
    body = orjson.dumps({**BASE, "data": [deep]})
    assert "deeper" in _refused(STRUCTURED, body, Code.BAD_CLOUDEVENT)
    # Beyond what the JSON parser reads at all: still a 400, never a crash.
    text = b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":' + b"[" * 5000
    assert "not JSON" in _refused(STRUCTURED, text + b"]" * 5000 + b"}", Code.BAD_CLOUDEVENT)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1]", b'"text"', b"\xff\xfe",
     b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":NaN}'],
)  # fmt: skip
def test_a_structured_body_that_is_no_json_object_is_refused(body: bytes) -> None:
    _refused(STRUCTURED, body, Code.BAD_CLOUDEVENT)


def test_binary_mode_takes_json_data_only() -> None:
    headers = {f"ce-{k}": v for k, v in BASE.items()}
    message = _refused({**headers, "Content-Type": "text/plain"}, b"hello",
                       Code.UNSUPPORTED_EVENT_MODE)  # fmt: skip
    assert "not JSON" in message
    _refused({**headers, "Content-Type": "application/octet-stream"}, b"\x00\x01",
             Code.UNSUPPORTED_EVENT_MODE)  # fmt: skip
    # Declared JSON but is not: refused, not kept as text as the SDK would.
    assert "not JSON" in _refused({**headers, "Content-Type": "application/json"}, b"{oops",
                                  Code.BAD_CLOUDEVENT)  # fmt: skip
    read = _parse({**headers, "Content-Type": "application/vnd.x+json; charset=utf-8"}, b"[1]")
    assert read.data == [1]


def test_binary_headers_given_twice_are_refused() -> None:
    headers = [(f"ce-{k}", v) for k, v in BASE.items()] + [("ce-id", "2")]
    with pytest.raises(WorkflowError, match="twice"):
        parse_http("", headers, b"{}")


def test_percent_encoded_nul_in_a_header_is_refused() -> None:
    headers = {**{f"ce-{k}": v for k, v in BASE.items()}, "ce-subject": "a%00b"}
    assert "NUL" in _refused(headers, b"{}", Code.BAD_CLOUDEVENT)


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        ("application/cloudevents-batch+json", "batch mode"),
        ("application/cloudevents+avro", "format"),
        ("application/json", "not a CloudEvent"),
        ("", "not a CloudEvent"),
    ],
)
def test_other_modes_are_415_with_why(content_type: str, words: str) -> None:
    body = orjson.dumps([BASE] if "batch" in content_type else BASE)
    assert words in _refused({"Content-Type": content_type}, body, Code.UNSUPPORTED_EVENT_MODE)


def test_structured_data_base64_or_a_non_json_datacontenttype_is_415() -> None:
    body = orjson.dumps({**BASE, "data_base64": "aGk="})
    _refused(STRUCTURED, body, Code.UNSUPPORTED_EVENT_MODE)
    body = orjson.dumps({**BASE, "datacontenttype": "text/plain", "data": "hi"})
    _refused(STRUCTURED, body, Code.UNSUPPORTED_EVENT_MODE)
