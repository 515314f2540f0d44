"""Every route declares the role it needs, docs/api.md's table is the code's, and every route
of the OpenAPI document, tried with every role, refuses exactly the roles below its own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.config import Settings
from flowlog.web import create_app, roles_markdown, route_roles
from flowlog.workflow.errors import Code
from tests.api.conftest import MakeService
from tests.api.test_keys import bearer, first_key, until

ROOT = Path(__file__).resolve().parent.parent.parent
BEGIN = re.compile(r"<!-- roles: begin [^\n]*-->\n")
END = "<!-- roles: end -->"


def _app() -> web.Application:
    return create_app(Settings.from_env({}), "postgresql://nowhere/flowlog")


def test_every_route_declares_its_role() -> None:
    app = _app()
    entries = route_roles(app)
    assert {(e.method, e.path) for e in entries} >= {("POST", "/api/v1/keys"), ("GET", "/")}

    async def undeclared(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/api/v1/new-thing", undeclared)
    with pytest.raises(LookupError, match="/api/v1/new-thing declares no role"):
        route_roles(app)


def test_the_docs_table_is_the_codes() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    begin = BEGIN.search(text)
    assert begin is not None
    table = text[begin.end() : text.index(END)]
    assert table == roles_markdown(_app()), "run the snippet in docs/api.md's generator note"


def test_the_openapi_document_says_each_role() -> None:
    app = _app()
    document = app[keys.OPENAPI]
    declared = {(e.method, e.path): e.role for e in route_roles(app) if not e.console}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            role = declared[method.upper(), path]
            assert operation.get("x-flowlog-role") == (None if role is None else role.value)
            if role is not None:
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-thing", path)


async def test_every_route_with_every_role(make_service: MakeService, database_url: str) -> None:
    service = await make_service()
    callers: dict[Role, str] = {}
    for role in Role:
        callers[role] = await first_key(database_url, name=f"as-{role.value}", role=role)

    async def enabled() -> bool:
        ring = service.app[keys.ACCESS]
        return all(ring.identify(key) is not None for key in callers.values())

    await until(enabled)
    client = service.client
    app = service.app
    tried = 0
    for entry in route_roles(app):
        if entry.path.startswith("/console/static") or entry.path.startswith("/console/vendor"):
            continue
        path = _concrete(entry.path)
        body: Any = {} if entry.method in {"POST", "PUT"} else None
        if entry.path == "/login" and entry.method == "POST":
            continue  # a form, tried by tests/console/test_access.py
        # Nobody: open routes answer, the others ask who it is.
        answer = await client.request(entry.method, path, json=body, allow_redirects=False)
        answer.close()  # an event stream would go on: its status is all this asks
        if entry.role is None:
            assert answer.status not in {401, 403}, (entry, answer.status)
        elif entry.console:
            assert answer.status == 303, (entry, answer.status)
        else:
            assert answer.status == 401, (entry, answer.status)
        for role, key in callers.items():
            answer = await client.request(
                entry.method, path, json=body, headers=bearer(key), allow_redirects=False
            )
            if role.allows(entry.role):
                answer.close()
                assert answer.status not in {401, 403}, (entry, role, answer.status)
            else:
                text = await answer.text()
                assert answer.status == 403, (entry, role, answer.status, text)
                if not entry.console:
                    assert f'"code":{Code.ROLE_REQUIRED.value}' in text
                assert entry.role is not None
                assert entry.role.value in text
            tried += 1
    assert tried > 40 * len(Role)
