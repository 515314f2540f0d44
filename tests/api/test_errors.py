"""Refusals: each answers its honest HTTP status with the envelope
``{"code": <nonzero>, "message": str, "data": {...}}``, tells nothing of the service's insides,
and changes nothing."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from typing import Any

import asyncpg
import orjson
import pytest

from flowlog.api import common, routes
from flowlog.api.json_keys import refuse_duplicate_keys
from flowlog.web import MAX_BODY
from flowlog.wire.base import RESERVED_CONTEXT_KEYS
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.executor import FlowContext
from tests.api.conftest import Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    NO_FLOW,
    Client,
    create,
    events,
    ok,
    post,
    refused,
    status_of,
    total,
    wait_status,
)

COMMANDS = ["start", "stop", "cancel", "context", "retry"]
"""The POST routes that name a flow."""


def command_body(command: str, flow_id: str) -> dict[str, Any]:
    extra = {"context": {"key": "k", "value": 1}}.get(command, {})
    return {"workFlowId": flow_id, **extra}


# -- bad input ----------------------------------------------------------------------------------


async def test_a_body_that_is_not_a_json_object_is_400(client: Client) -> None:
    for path in [FLOWS, *(FLOWS + c for c in COMMANDS), DEFINITIONS]:
        for raw in (b"{", b"", b"[]", b"null", b'"text"', b'{"workFlowId": "a",}', b"\xff\xfe"):
            answer = await client.post(path, data=raw, headers={"Content-Type": "application/json"})
            await refused(answer, 400, Code.BAD_INPUT)
    assert await total(client) == 0
    assert len((await ok(await client.get(DEFINITIONS)))["definitions"]) == 4


async def test_a_body_that_is_not_declared_json_is_400(client: Client) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        answer = await client.post(
            FLOWS,
            data=b'{"flowName": "backup", "bizId": "", "bizType": ""}',
            headers={} if content_type is None else {"Content-Type": content_type},
        )
        body = await refused(answer, 400, Code.BAD_INPUT)
        assert "JSON" in body["message"]
    assert await total(client) == 0


WRONG_CREATES: list[tuple[dict[str, Any], list[str]]] = [
    ({"flowName": "backup", "bizId": "", "bizType": "", "colour": "red"}, ["colour"]),
    ({"flowName": "backup", "bizId": ""}, ["bizType"]),
    ({"flowName": "", "bizId": "", "bizType": ""}, ["flowName"]),
    ({"flowName": 7, "bizId": "", "bizType": ""}, ["flowName"]),
    ({"flowName": "backup", "bizId": None, "bizType": ""}, ["bizId"]),
    ({"flowName": "backup", "bizId": "", "bizType": "", "context": [1]}, ["context"]),
    ({"flowName": "backup", "bizId": "", "bizType": "", "start": "maybe"}, ["start"]),
    ({"flowName": "backup", "bizId": "x" * 201, "bizType": ""}, ["bizId"]),
    ({"flowName": "b\u0000", "bizId": "", "bizType": ""}, []),
]


async def test_a_wrong_create_body_is_400_and_creates_nothing(client: Client) -> None:
    for body, where in WRONG_CREATES:
        refusal = await refused(await post(client, FLOWS, body), 400, Code.BAD_INPUT)
        errors = refusal["data"]["errors"]
        assert errors
        assert all(set(e) == {"loc", "message"} for e in errors)
        if where:
            assert errors[0]["loc"] == where, body
            assert refusal["message"].startswith(where[0] + ": ")
    assert await total(client) == 0


async def test_a_context_value_that_cannot_be_stored_is_400(client: Client) -> None:
    """JSON allows integers of any size; the event log does not (64 bits)."""
    answer = await client.post(
        FLOWS,
        data=b'{"flowName": "backup", "bizId": "", "bizType": "", "context": {"n": 1'
        + b"0" * 30
        + b"}}",
        headers={"Content-Type": "application/json"},
    )
    body = await refused(answer, 400, Code.BAD_INPUT)
    assert "64 bits" in body["message"]
    assert await total(client) == 0


async def test_text_that_postgresql_cannot_store_is_400(client: Client) -> None:
    """Neither NUL nor a lone surrogate (both spellable in JSON) fits in text or jsonb: the
    request is refused before it reaches the database."""
    flow_id = await create(client, start=False)
    before = await events(client, flow_id)
    for raw in (
        rb'{"flowName": "backup", "bizId": "a\u0000b", "bizType": ""}',
        rb'{"flowName": "backup", "bizId": "", "bizType": "", "context": {"k\u0000": 1}}',
        rb'{"flowName": "backup", "bizId": "", "bizType": "", "context": {"k": ["\u0000"]}}',
        rb'{"flowName": "backup", "bizId": "\ud800", "bizType": ""}',
        rb'{"flowName": "backup", "bizId": "", "bizType": "", "context": {"k": {"x": "\udfff"}}}',
    ):
        answer = await client.post(FLOWS, data=raw, headers={"Content-Type": "application/json"})
        await refused(answer, 400, Code.BAD_INPUT)
    for command, raw in (
        ("context", b'{"workFlowId": "%s", "key": "k", "value": "\\u0000"}'),
        ("retry", b'{"workFlowId": "%s", "context": {"k": "\\ud800"}}'),
        ("stop", b'{"workFlowId": "%s", "reason": "\\u0000"}'),
    ):
        answer = await client.post(
            FLOWS + command,
            data=raw % flow_id.encode(),
            headers={"Content-Type": "application/json"},
        )
        await refused(answer, 400, Code.BAD_INPUT)
    for path in (FLOWS + "a%00b", FLOWS + "a%00b/events", f"{DEFINITIONS}/a%00b"):
        await refused(await client.get(path), 400, Code.BAD_INPUT)
    await refused(await client.get(FLOWS, params={"bizId": "a\x00b"}), 400, Code.BAD_INPUT)
    assert await events(client, flow_id) == before
    assert await total(client) == 1


async def test_a_wrong_command_body_is_400_and_changes_nothing(client: Client) -> None:
    flow_id = await create(client, start=False)
    before = await events(client, flow_id)
    for command in COMMANDS:
        for body in (
            {**command_body(command, flow_id), "extra": 1},
            {"workFlowId": 1},
            {"workFlowId": ""},
            {},
            {**command_body(command, flow_id), "workFlowId": [flow_id]},
            # Every command takes a reason, of at most 1000 characters.
            {**command_body(command, flow_id), "reason": "x" * 1001},
        ):
            await refused(await post(client, FLOWS + command, body), 400, Code.BAD_INPUT)
    await refused(await post(client, FLOWS + "context", {"workFlowId": flow_id, "key": ""}), 400,
                  Code.BAD_INPUT)  # fmt: skip
    await refused(await post(client, FLOWS + "retry", {"workFlowId": flow_id, "context": 1}), 400,
                  Code.BAD_INPUT)  # fmt: skip
    assert await events(client, flow_id) == before


WRONG_LISTS: list[dict[str, Any]] = [
    {"page": 0},
    {"page": "one"},
    {"pageSize": 0},
    {"pageSize": 101},
    {"status": "Sleeping"},
    {"flowName": ""},
    {"colour": "red"},
    {"createdFrom": "yesterday"},
    {"createdFrom": "0.5"},
]


async def test_a_wrong_list_query_is_400(client: Client) -> None:
    for params in WRONG_LISTS:
        await refused(await client.get(FLOWS, params=params), 400, Code.BAD_INPUT)


def forged(*parts: object) -> str:
    """A cursor as flowlog writes them (base64 of a JSON array), holding ``parts``."""
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


async def test_a_forged_list_cursor_is_400(client: Client) -> None:
    await create(client, start=False)
    for cursor in (
        "not-a-cursor",
        forged("yesterday", "x"),
        forged({"a": 1}),
        forged("0001-01-01T00:00:00+14:00", "x"),  # before year 1 in UTC
        forged("9999-12-31T23:59:59-14:00", "x"),  # after year 9999 in UTC
        forged("2020-01-01T00:00:00+00:00", "x\u0000y"),  # NUL: no text in PostgreSQL
    ):
        body = await refused(await client.get(FLOWS, params={"cursor": cursor}), 400,
                             Code.BAD_INPUT)  # fmt: skip
        assert body["message"] == f"not a paging cursor: {cursor!r}"
    # A well-formed one pages (here past the only flow: it was created after 2020).
    cursor = forged("2020-01-01T00:00:00+00:00", "x")
    found = await ok(await client.get(FLOWS, params={"cursor": cursor}), paged=True)
    assert found["data"]["workFlows"] == []
    assert found["page"]["total"] == 1


async def test_a_repeated_query_parameter_is_400(client: Client) -> None:
    answer = await client.get(FLOWS + "?status=Finished&status=Error")
    body = await refused(answer, 400, Code.BAD_INPUT)
    assert "status" in body["message"]


async def test_a_wrong_history_query_is_400(client: Client) -> None:
    flow_id = await create(client, start=False)
    for suffix in ("/events", "/state", "/events/stream"):
        for params in ({"pageSize": 501} if suffix != "/state" else {"version": -1}, {"x": 1}):
            await refused(await client.get(FLOWS + flow_id + suffix, params=params), 400,
                          Code.BAD_INPUT)  # fmt: skip


async def test_an_oversized_body_is_413_and_creates_nothing(client: Client) -> None:
    padding = b"x" * (MAX_BODY + 1)
    answer = await client.post(
        FLOWS,
        data=io.BytesIO(b'{"flowName": "backup", "bizId": "' + padding + b'", "bizType": ""}'),
        headers={"Content-Type": "application/json"},
    )
    await refused(answer, 413, Code.TOO_LARGE)
    assert await total(client) == 0
    # Just under the limit is read (and refused for what it says, not for its size).
    small = b'{"flowName": "backup", "bizId": "' + b"x" * (MAX_BODY - 100) + b'", "bizType": ""}'
    answer = await client.post(
        FLOWS, data=io.BytesIO(small), headers={"Content-Type": "application/json"}
    )
    await refused(answer, 400, Code.BAD_INPUT)


# -- unknown things -----------------------------------------------------------------------------


async def test_an_unknown_flow_is_404_everywhere(client: Client) -> None:
    for suffix in ("", "/events", "/state", "/events/stream"):
        body = await refused(await client.get(FLOWS + NO_FLOW + suffix), 404,
                             Code.FLOW_NOT_FOUND)  # fmt: skip
        assert body["message"] == f"workflow {NO_FLOW} does not exist"
    for command in COMMANDS:
        answer = await post(client, FLOWS + command, command_body(command, NO_FLOW))
        await refused(answer, 404, Code.FLOW_NOT_FOUND)
    assert await total(client) == 0


NOT_FLOW_IDS = [
    "ghost",
    "3f0c5b2e-8d1a-4c3b-9e2f-0a1b2c3d4e5",  # one digit short
    "3F0C5B2E-8D1A-4C3B-9E2F-0A1B2C3D4E5F",  # flowlog spells them lowercase
    "3f0c5b2e8d1a4c3b9e2f0a1b2c3d4e5f",  # without hyphens
    "3f0c5b2e-8d1a-1c3b-9e2f-0a1b2c3d4e5f",  # a version 1 UUID: flowlog makes 4 and 5
    "3f0c5b2e-8d1a-4c3b-9e2f-0a1b2c3d4e5f.2",  # a node's id
    "00000000-0000-0000-0000-000000000000",
    "x" * 5000,
]


@pytest.mark.parametrize("not_an_id", NOT_FLOW_IDS, ids=lambda text: text[:40])
async def test_a_malformed_flow_id_is_400_not_a_flow_id_everywhere(
    client: Client, not_an_id: str
) -> None:
    """No flow could have it (flow ids are UUIDs flowlog made): bad input, not "does not
    exist"."""
    flow_id = await create(client, start=False)
    for suffix in ("", "/events", "/state", "/diff?since=1&until=1", "/events/stream"):
        body = await refused(await client.get(FLOWS + not_an_id + suffix), 400, Code.BAD_INPUT)
        assert "not a flow id" in body["message"], suffix
    bodies = [(FLOWS + command, command_body(command, not_an_id)) for command in COMMANDS]
    bodies += [
        (FLOWS + "callback", {"workFlowId": not_an_id, "nodeId": f"{not_an_id}.2",
                              "status": "success"}),
        (FLOWS + "bulk", {"action": "stop", "workFlowIds": [flow_id, not_an_id]}),
    ]  # fmt: skip
    for path, sent in bodies:
        body = await refused(await post(client, path, sent), 400, Code.BAD_INPUT)
        assert "not a flow id" in body["message"], path
    assert await total(client) == 1
    assert await status_of(client, flow_id) == "Initializing"  # the bulk stopped no flow


async def test_an_unknown_definition_is_404_and_creates_nothing(client: Client) -> None:
    answer = await post(client, FLOWS, {"flowName": "nothing", "bizId": "", "bizType": ""})
    body = await refused(answer, 404, Code.DEFINE_NOT_FOUND)
    assert "nothing" in body["message"]
    assert await total(client) == 0


async def test_an_unknown_route_is_404(client: Client) -> None:
    for path in ("/nowhere", "/api/v1", "/api/v1/workflows", "/api/v1/workflow/a/b/c", "/healthz/"):
        body = await refused(await client.get(path), 404, Code.NOT_FOUND)
        assert body["message"] == f"no route {path}"


WRONG_METHODS = [
    ("PUT", FLOWS + "start", "POST"),
    ("DELETE", FLOWS, "GET"),
    ("PATCH", FLOWS + "some-flow", "GET"),
    ("DELETE", DEFINITIONS, "POST"),
    ("POST", "/healthz", "GET"),
    ("PUT", "/metrics", "GET"),
]


async def test_a_wrong_method_is_405(client: Client) -> None:
    for method, path, allowed in WRONG_METHODS:
        answer = await client.request(method, path)
        body = await refused(answer, 405, Code.METHOD_NOT_ALLOWED)
        assert method in body["message"]
        assert allowed in answer.headers["Allow"].split(","), answer.headers["Allow"]


# -- the flow's state does not allow it --------------------------------------------------------


async def _refused_without_change(
    client: Client, flow_id: str, command: str, code: Code, body: dict[str, Any] | None = None
) -> None:
    before = await events(client, flow_id)
    status = await status_of(client, flow_id)
    answer = await post(client, FLOWS + command, body or command_body(command, flow_id))
    refusal = await refused(answer, 409, code)
    assert flow_id in refusal["message"]
    assert await events(client, flow_id) == before
    assert await status_of(client, flow_id) == status


async def test_commands_on_a_finished_flow_are_409(client: Client) -> None:
    flow_id = await create(client)
    await wait_status(client, flow_id, {"Finished"})
    await _refused_without_change(client, flow_id, "start", Code.START_FAILED)
    await _refused_without_change(client, flow_id, "stop", Code.STOP_FAILED)
    await _refused_without_change(client, flow_id, "cancel", Code.CANCEL_FAILED)
    await _refused_without_change(client, flow_id, "context", Code.CONTEXT_FAILED)
    await _refused_without_change(client, flow_id, "retry", Code.RETRY_FAILED)


async def test_commands_on_a_canceled_flow_are_409(client: Client) -> None:
    flow_id = await create(client, start=False)
    await ok(await post(client, FLOWS + "cancel", {"workFlowId": flow_id}))
    await _refused_without_change(client, flow_id, "start", Code.START_FAILED)
    await _refused_without_change(client, flow_id, "stop", Code.STOP_FAILED)
    await _refused_without_change(client, flow_id, "cancel", Code.CANCEL_FAILED)
    await _refused_without_change(client, flow_id, "retry", Code.RETRY_FAILED)


async def test_retry_of_a_flow_that_did_not_fail_is_409(service: Service) -> None:
    client = service.client
    waiting = await create(client, start=False)
    await _refused_without_change(client, waiting, "retry", Code.RETRY_FAILED)
    running = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)  # the flow waits at the gate
    await _refused_without_change(client, running, "retry", Code.RETRY_FAILED)
    service.gate.opened.set()
    await wait_status(client, running, {"Finished"})


async def test_a_flow_in_error_refuses_start_but_not_retry(client: Client) -> None:
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    await _refused_without_change(client, flow_id, "start", Code.START_FAILED)
    await _refused_without_change(client, flow_id, "context", Code.CONTEXT_FAILED)
    await ok(await post(client, FLOWS + "retry", {"workFlowId": flow_id, "context": {"ok": 1}}))
    await wait_status(client, flow_id, {"Finished"})


# -- faults of the service ---------------------------------------------------------------------


FAULTS: list[tuple[Exception, int, Code, str]] = [
    (RuntimeError("secret at /srv/app.py line 3"), 500, Code.INTERNAL, "internal error"),
    (asyncpg.UndefinedTableError("relation secret"), 500, Code.INTERNAL, "internal error"),
    (
        asyncpg.CannotConnectNowError("secret: starting up"),
        503,
        Code.UNAVAILABLE,
        "the database is unavailable; try again",
    ),
    (
        ConnectionRefusedError("secret"),
        503,
        Code.UNAVAILABLE,
        "the database is unavailable; try again",
    ),
]


async def test_a_fault_answers_without_its_details(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id = await create(client, start=False)
    for fault, status, code, message in FAULTS:

        async def broken(*args: object, fault: Exception = fault) -> None:
            raise fault

        monkeypatch.setattr(common, "get_workflow", broken)
        answer = await client.get(FLOWS + flow_id, headers={"X-Request-Id": "req-fault"})
        assert answer.headers["X-Request-Id"] == "req-fault"  # to find the logged fault
        body = await refused(answer, status, code)
        assert body["message"] == message
        assert body["data"] == {}
        assert "secret" not in str(body)
    monkeypatch.undo()
    assert (await ok(await client.get(FLOWS + flow_id)))["info"]["id"] == flow_id


async def test_context_keys_that_flowlog_sets_are_refused(client: Client) -> None:
    """The trace, user and tenant ids come from the request; a caller must not pose as
    another user or tenant to the executors that read them."""
    assert {FlowContext.TRACE_ID, FlowContext.USER_ID, FlowContext.TENANT_ID} == (
        RESERVED_CONTEXT_KEYS
    )
    for key in sorted(RESERVED_CONTEXT_KEYS):
        body = {"flowName": "backup", "bizId": "", "bizType": "", "context": {key: "other"}}
        refusal = await refused(await post(client, FLOWS, body), 400, Code.BAD_INPUT)
        assert key in refusal["message"]
    assert await total(client) == 0

    flow_id = await create(client, start=False)
    before = await events(client, flow_id)
    for key in sorted(RESERVED_CONTEXT_KEYS):
        context = {"workFlowId": flow_id, "key": key, "value": "tenant-b"}
        await refused(await post(client, FLOWS + "context", context), 400, Code.BAD_INPUT)
        retry = {"workFlowId": flow_id, "context": {key: "tenant-b"}}
        await refused(await post(client, FLOWS + "retry", retry), 400, Code.BAD_INPUT)
    assert await events(client, flow_id) == before


async def test_nan_and_infinity_are_not_json_and_are_refused(client: Client) -> None:
    for spelled in (b"NaN", b"Infinity", b"-Infinity"):
        answer = await client.post(
            FLOWS,
            data=b'{"flowName": "backup", "bizId": "", "bizType": "", "context": {"x": '
            + spelled
            + b"}}",
            headers={"Content-Type": "application/json"},
        )
        await refused(answer, 400, Code.BAD_INPUT)
    assert await total(client) == 0


# -- issue 10: errors that say what happened ---------------------------------------------------


async def test_a_client_that_hangs_up_mid_body_is_no_database_outage(database_url: str) -> None:
    """Against a real ``flowlog serve`` (aiohttp's test server cancels the handler instead)."""
    from urllib.parse import urlsplit

    import aiohttp

    from flowlog.bench.harness import serve_process

    async with serve_process(database_url) as base:
        where = urlsplit(base)
        _reader, writer = await asyncio.open_connection(where.hostname, where.port)
        writer.write(
            b"POST /api/v1/workflow/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b'\r\nContent-Length: 1000\r\n\r\n{"flowName":'
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
        counted = (
            'flowlog_http_client_disconnects_total{method="POST",route="/api/v1/workflow/"} 1.0'
        )
        async with aiohttp.ClientSession(base) as session:
            for _ in range(100):
                async with session.get("/metrics") as answer:
                    metrics = await answer.text()
                if counted in metrics:
                    break
                await asyncio.sleep(0.05)
            async with session.get(FLOWS) as answer:
                listed = await answer.json()
    assert counted in metrics
    assert 'route="/api/v1/workflow/",status="499"' in metrics
    assert 'status="503"' not in metrics  # not counted as a database outage
    assert 'status="500"' not in metrics
    assert listed["page"]["total"] == 0


async def _post_encoded(client: Client, data: bytes, coding: str) -> Any:
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    return await client.post(FLOWS, data=data, headers=headers)


async def test_content_encodings_decode_or_are_refused_in_the_envelope(client: Client) -> None:
    import gzip
    import zlib

    import brotli

    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd

    body = orjson.dumps({"flowName": "backup", "bizId": "enc", "bizType": "t"})
    good = {
        "gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "br": brotli.compress(body),
        "zstd": zstd.compress(body),
    }
    for coding, data in good.items():
        await ok(await _post_encoded(client, data, coding))
    for coding in ("gzip", "deflate", "br", "zstd"):  # a body that is not what it says
        refusal = await refused(await _post_encoded(client, body, coding), 400, Code.BAD_ENCODING)
        assert coding in refusal["message"]
    for coding in ("foo", "gzip, compress"):
        answer = await _post_encoded(client, body, coding)
        refusal = await refused(answer, 415, Code.UNSUPPORTED_ENCODING)
        assert "is not supported" in refusal["message"]
    assert await total(client) == len(good)


async def _post_json(client: Client, path: str, body: Any) -> Any:
    """With the standard library's encoder: orjson refuses integers beyond 64 bits."""
    import json

    headers = {"Content-Type": "application/json"}
    return await client.post(path, data=json.dumps(body), headers=headers)


async def test_an_integer_beyond_64_bits_is_bad_input_on_every_route(service: Service) -> None:
    client = service.client
    huge = 2**64
    create_body = {"flowName": "fussy", "bizId": "", "bizType": "", "context": {"n": huge}}
    await refused(await _post_json(client, FLOWS, create_body), 400, Code.BAD_INPUT)
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    before = await events(client, flow_id)
    for path, body in [
        ("context", {"workFlowId": flow_id, "key": "n", "value": -(2**63) - 1}),
        ("context", {"workFlowId": flow_id, "key": "n", "value": {"deep": [huge]}}),
        ("retry", {"workFlowId": flow_id, "context": {"n": huge}}),
    ]:
        answer = await _post_json(client, FLOWS + path, body)
        refusal = await refused(answer, 400, Code.BAD_INPUT)
        assert "64 bits" in refusal["message"]
    assert await events(client, flow_id) == before
    # Written with an exponent, it is a number beyond the range all the same (the OpenAPI
    # document states the range for every number: JSON cannot tell 1e30 from an integer).
    for beyond in (1e30, -7.6e307, float(2**64)):
        body = {"workFlowId": flow_id, "context": {"n": {"deep": [beyond]}}}
        refusal = await refused(await _post_json(client, FLOWS + "retry", body), 400,
                                Code.BAD_INPUT)  # fmt: skip
        assert "64 bits" in refusal["message"]
    assert await events(client, flow_id) == before
    edge = {"workFlowId": flow_id, "context": {"low": -(2**63), "high": 2**64 - 1, "ok": True,
                                               "float": 1.5e16, "small": -9.2e18}}  # fmt: skip
    await ok(await _post_json(client, FLOWS + "retry", edge))  # the edges themselves are fine


async def test_a_query_string_that_is_not_utf8_is_refused(client: Client) -> None:
    for query in ("bizId=%ff%fe", "flowName=%c3", "bizType=a%80b"):
        answer = await client.get(f"{FLOWS}?{query}")
        refusal = await refused(answer, 400, Code.BAD_INPUT)
        assert "UTF-8" in refusal["message"]
    page = await client.get("/?bizId=%ff")
    assert page.status == 400
    assert "not valid UTF-8" in await page.text()
    await ok(await client.get(f"{FLOWS}?bizId=%C3%A9t%C3%A9"), paged=True)  # été: fine


def _body_routes() -> list[tuple[str, str]]:
    found = []
    for op in routes.api.operations:
        if op.body is not None:
            found.append((op.method, re.sub(r"\{[^}]+\}", "x", op.path)))
    return found


@pytest.mark.parametrize(("method", "path"), _body_routes())
async def test_a_key_given_twice_is_400_on_every_json_body(
    client: Client, method: str, path: str
) -> None:
    raw = b'{"reason": "a", "reason": "b"}'
    answer = await client.request(
        method, path, data=raw, headers={"Content-Type": "application/json"}
    )
    refusal = await refused(answer, 400, Code.BAD_INPUT)
    assert refusal["message"] == "the body gives the key 'reason' twice in one object"


async def test_a_callback_status_given_twice_completes_nothing(client: Client) -> None:
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    before = await events(client, flow_id)
    for raw in (
        b'{"workFlowId": "%s", "context": {"a": 1, "a": 2}}' % flow_id.encode(),
        b'{"workFlowId": "%s", "context": {"url": "http://x:1", "k": 1, "k": 2}}'
        % flow_id.encode(),
        b'{"workFlowId": "%s", "context": {"a": 1, "\\u0061": 2}}' % flow_id.encode(),
        b'{"workFlowId": "%s", "workFlowId": "%s"}' % (flow_id.encode(), flow_id.encode()),
    ):
        answer = await client.post(
            FLOWS + "retry", data=raw, headers={"Content-Type": "application/json"}
        )
        refusal = await refused(answer, 400, Code.BAD_INPUT)
        assert "twice" in refusal["message"]
    assert await events(client, flow_id) == before
    # The same keys in different objects, and colons in strings, are fine.
    fine = b'{"workFlowId": "%s", "context": {"a": {"a": "x:y"}, "t": "12:00", "c": "\\u003a"}}'
    await ok(
        await client.post(
            FLOWS + "retry", data=fine % flow_id.encode(),
            headers={"Content-Type": "application/json"},
        )
    )  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1, "a": 2}',
        b'[{"x": {"b": 1, "b": 2}}]',
        b'{"a\\":": 1, "a\\":": 2}',
        b'{"k": "\\"", "k": 1}',
        b'{"k": "\\\\", "k": "a:b"}',
        b'{"a": 1, "\\u0061": 2}',
        b'{"s": "x", "s": "y", "pad": "\\u003a\\u003a"}',
        b'{"u": "http://h:1", "u": "h:2"}',
    ],
)
def test_repeated_keys_are_found_however_they_hide(raw: bytes) -> None:
    with pytest.raises(WorkflowError, match="twice in one object"):
        refuse_duplicate_keys(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b"[]",
        b'[{"x": 1}, {"x": 2}]',
        b'{"a": {"a": {"a": 1}}}',
        b'{"t": "12:00:00"}',
        b'{"k": "\\\\u003a", "j": ":"}',
        b'{"x": "\\u003a\\u003A"}',
        b"not json",
        b"[" * 500 + b'{"a": "b:c"}' + b"]" * 500,
    ],
)
def test_bodies_without_repeated_keys_pass(raw: bytes) -> None:
    refuse_duplicate_keys(raw)
