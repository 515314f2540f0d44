"""The OpenAPI document, fuzzed: every operation is called with generated input (valid and not)
against a live server, and every answer must be no 5xx and conform to the document.

The document comes from the route registry without I/O, so schemathesis can collect one test
per operation at import time; the server (API and reactor, the demo definitions, a few flows
so that lookups can hit) runs in a thread of its own for the whole session.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from aiohttp import ClientSession, web
from hypothesis import HealthCheck, settings
from schemathesis import checks

from flowlog.api.routes import api
from flowlog.bench.harness import discard_database
from flowlog.config import Settings
from flowlog.database import create_database, with_database
from flowlog.engine import load_definitions
from flowlog.storable import JSON_INTEGERS
from flowlog.web import create_app

schema = schemathesis.openapi.from_dict(api.openapi(title="flowlog", version="fuzz"))
# PostgreSQL stores no NUL in text or jsonb, and the document cannot say so for free-form
# context; the API's 400 for NUL is tested in tests/api.
schema.config.generation.update(allow_x00=False)
# A body that breaks a maxLength can be larger than the service reads at all: refused with 413
# before it is parsed (tests/api/test_errors.py), which is a refusal of it too.
_rejections = schema.config.checks.negative_data_rejection
_rejections.expected_statuses = [*_rejections.expected_statuses, "413"]


def _beyond_64_bits(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value not in JSON_INTEGERS
    if isinstance(value, float):
        return not JSON_INTEGERS.start <= value < JSON_INTEGERS.stop
    if isinstance(value, dict):
        return any(_beyond_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return any(_beyond_64_bits(v) for v in value)
    return False


@schemathesis.hook
def filter_body(ctx: Any, body: Any) -> bool:
    """The generator follows the JsonValue schema's recursion only so deep and draws any JSON
    below it: a number beyond 64 bits there (an integer, or 1e30) breaks the document's own
    rule, and the server rightly refuses it (400); such a body is not schema-valid, so it is
    not drawn."""
    return not _beyond_64_bits(body)


# Flows the fuzzer's generated ids may not find; these make a few lookups succeed.
SEEDED_FLOWS = 3

# Input rules the document cannot state, so a schema-valid request may rightly get a 400:
# a list cursor is opaque (only one the server issued is valid), a definition's nodes must
# form a graph (transitions name existing nodes; a polling node polls an http statusUrl), and a
# bulk action names its flows or a filter, exactly one (and context changes only to retry); a
# callback's completion names its node by token or by ids, one way; a schedule's cron
# expression, time zone and templates must mean something, and it has a cron or an interval;
# a task's answer gives an operationId only with status running.
SEMANTIC_RULES = {
    ("POST", "/api/v1/tasks/complete"),
    ("POST", "/api/v1/workflow-schedules"),
    ("PUT", "/api/v1/workflow-schedules/{scheduleId}"),
    ("GET", "/api/v1/workflow/"),
    ("POST", "/api/v1/workflow-definitions"),
    ("POST", "/api/v1/workflow/bulk"),
    ("POST", "/api/v1/workflow/callback"),
    ("POST", "/api/v1/keys"),  # an expiry in the past; a name the tenant has
    ("GET", "/api/v1/keys"),  # a cursor this list did not give
    # Versions the definition does not have; a node map naming keys they do not have.
    ("POST", "/api/v1/workflow-definitions/{name}/migrations"),
    # A definition the tenant cannot start; a template path to nowhere; a cursor not given.
    ("POST", "/api/v1/event-rules"),
    ("PATCH", "/api/v1/event-rules/{ruleId}"),
    ("GET", "/api/v1/event-rules"),
    ("GET", "/api/v1/events"),
    # Not a CloudEvent: the document cannot describe the two content modes as one body.
    ("POST", "/api/v1/events"),
    # A webhook URL must reach a public address (or an allowed one): docs/webhooks.md.
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks"),  # a cursor this list did not give
    # A change names at least one setting, and url, events and description are never null.
    ("PATCH", "/api/v1/webhooks/{webhookId}"),
    # Both or neither of fromPosition and fromTime; a time to come (400, 40148).
    ("POST", "/api/v1/webhooks/{webhookId}/replay"),
}

TOKEN = "fuzz-token"
AUTHORIZATION = {"Authorization": f"Bearer {TOKEN}"}
"""The fuzzer calls as an admin of its tenant (a FLOWLOG_TOKENS token): on an open server, the
first key it made would close the server to the rest of its requests."""

# The seed's layout: ``GET /api/v1/workflow/{workFlowId}`` also matches these paths, so the
# ``Allow`` of a 405 on them truthfully lists GET, which their own entries do not declare; and
# a GET of one is the detail of a flow whose id ("start") is not a flow id: 400, not 405.
SHADOWED_BY_DETAIL = {
    f"/api/v1/workflow/{command}"
    for command in ("start", "stop", "cancel", "context", "retry", "bulk", "callback")
}


class LiveServer:
    """An aiohttp runner on its own event loop thread, on a free port."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        async with ClientSession(self.url) as client:
            for n in range(SEEDED_FLOWS):
                body = {
                    "flowName": "backup",
                    "bizId": f"fuzz-{n}",
                    "bizType": "cluster",
                    "context": {"slowSeconds": 0},
                }
                async with client.post("/api/v1/workflow/", json=body,
                                       headers=AUTHORIZATION) as response:  # fmt: skip
                    assert response.status == 200, await response.text()


@pytest.fixture(scope="session")
def live_server(server_url: str, template_database: str) -> Iterator[str]:
    name = f"flowlog_fuzz_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name, template=template_database))
    settings = Settings.from_env({}).model_copy(
        update={"concurrency": 4, "tokens": f"fuzz:{TOKEN}:fuzz"}
    )
    app = create_app(settings, with_database(server_url, name), load_definitions(["flowlog.demo"]))
    try:
        with LiveServer(app) as server:
            yield server.url
    finally:
        asyncio.run(discard_database(server_url, name))


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_within_its_document(
    case: schemathesis.Case, live_server: str
) -> None:
    excluded = []
    if (case.method, case.path) in SEMANTIC_RULES:
        excluded.append(checks.positive_data_acceptance)
    if case.path in SHADOWED_BY_DETAIL:
        excluded += [checks.allow_header_conformance, checks.unsupported_method]
    if case.headers:
        # A key the generator happens to repeat with another body is rightly refused (422):
        # idempotency keys are tested in tests/api/test_idempotency.py.
        case.headers.pop("Idempotency-Key", None)
        # The generator's coverage phase sends header values that ignore the declared pattern
        # (a bare "0"), and a position that is not one is rightly refused (400): positions are
        # tested in tests/api/test_positions.py and tests/replicas/.
        case.headers.pop("Flowlog-Position", None)
    if case.path == "/api/v1/tasks/poll" and isinstance(case.body, dict):
        # A long poll with no task to give waits as long as it was asked (up to 30 s): the
        # fuzzer's client would time out. Waits are tested in tests/tasks/.
        wait = case.body.get("waitSeconds")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= 30:
            case.body["waitSeconds"] = min(wait, 0.2)
    case.call_and_validate(base_url=live_server, headers=AUTHORIZATION, excluded_checks=excluded)
