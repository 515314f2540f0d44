"""The operations routes: health, readiness, Prometheus metrics, the OpenAPI document and the
readable docs page."""

from __future__ import annotations

import re
from typing import Any

from flowlog.api.middleware import CONSOLE_ROUTES
from flowlog.api.operations import alias_of
from flowlog.api.routes import api
from tests.api.conftest import Service
from tests.api.helpers import FLOWS, NO_FLOW, Client, create, ok, refused, wait_status


async def test_health_and_readiness(client: Client) -> None:
    assert await ok(await client.get("/healthz")) == {"status": "ok", "checks": {}}
    assert await ok(await client.get("/readyz")) == {
        "status": "ready",
        "checks": {"database": True, "listener": True},
        "replicas": [],
        "stranded": [],  # no flow waits for a version no running process has
    }


def samples(text: str) -> dict[str, float]:
    """The exposition's samples: ``name{labels}`` -> value."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_metrics_after_flows_ran(service: Service) -> None:
    client = service.client
    finished = await create(client, "backup")
    failed = await create(client, "fussy")
    await wait_status(client, finished, {"Finished"})
    await wait_status(client, failed, {"Error"})
    await create(client, "backup", start=False)
    await refused(await client.get(FLOWS + NO_FLOW), 404, 40111)

    answer = await client.get("/metrics")
    assert answer.status == 200
    assert answer.content_type == "text/plain"
    text = await answer.text()
    found = samples(text)
    assert found['flowlog_flows{definition="backup",status="Finished"}'] == 1
    assert found['flowlog_flows{definition="backup",status="Initializing"}'] == 1
    assert found['flowlog_flows{definition="fussy",status="Error"}'] == 1
    node = 'definition="backup",node="updateBackupRecord",outcome="success"'
    assert found[f"flowlog_node_duration_seconds_count{{{node}}}"] == 1
    assert found['flowlog_node_duration_seconds_count{definition="fussy",node="check",'
                 'outcome="failure"}'] == 1  # fmt: skip
    for state in ("held", "expired", "pending"):
        assert f'flowlog_leases{{state="{state}"}}' in found
    assert found["flowlog_reactor_lag_seconds"] >= 0
    assert found["flowlog_reactor_busy_flows"] == 0
    assert found["flowlog_reactor_concurrency_limit"] == 8  # the service's fixed concurrency
    # HTTP requests, by route template (not by flow id) and status.
    create_route = 'method="POST",route="/api/v1/workflow/",status="200"'
    assert found[f"flowlog_http_request_duration_seconds_count{{{create_route}}}"] == 3
    detail_route = 'method="GET",route="/api/v1/workflow/{workFlowId}",status="404"'
    assert found[f"flowlog_http_request_duration_seconds_count{{{detail_route}}}"] == 1
    assert finished not in text
    assert all(name.startswith("flowlog_") for name in found)


async def test_the_openapi_document_describes_every_route(service: Service) -> None:
    client = service.client
    answer = await client.get("/api/v1/openapi.json")
    assert answer.status == 200
    assert answer.content_type == "application/json"
    document: dict[str, Any] = await answer.json()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "flowlog"
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }

    served = {
        (route.method, route.resource.canonical)
        for route in service.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not (route.name or "").startswith(CONSOLE_ROUTES)  # pages, not the API
    }
    described = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    aliases = {
        (op.method, alias) for op in api.operations if (alias := alias_of(op.path)) is not None
    }
    assert aliases == {("GET", "/api/v1/workflow"), ("POST", "/api/v1/workflow")}
    assert described == served - aliases
    assert {(op.method, op.path) for op in api.operations} == served - aliases
    assert len(served - aliases) == 55

    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method} {path}"
            assert op["summary"], where
            assert op["operationId"], where
            assert "200" in op["responses"], where
            names = re.findall(r"{(\w+)}", path)
            params = {p["name"]: p for p in op.get("parameters", [])}
            assert all(params[n]["in"] == "path" and params[n]["required"] for n in names), where
            for status, response in op["responses"].items():
                if status != "200":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, where
    # Every reference resolves.
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', await answer.text()))
    assert refs
    assert refs <= set(schemas)

    create = document["paths"]["/api/v1/workflow/"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateRequest"}
    assert schemas["CreateRequest"]["additionalProperties"] is False
    assert set(schemas["CreateRequest"]["required"]) == {"flowName", "bizId", "bizType"}
    listing = document["paths"]["/api/v1/workflow/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "bizId", "bizType", "flowName", "status", "page", "pageSize",
    }  # fmt: skip
    assert set(create["responses"]) >= {"200", "400", "404"}
    stream = document["paths"]["/api/v1/workflow/{workFlowId}/events/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]


async def test_the_docs_page_is_swagger_ui_served_from_this_server(client: Client) -> None:
    answer = await client.get("/api/v1/docs")
    assert answer.status == 200
    assert answer.content_type == "text/html"
    page = await answer.text()
    assert page.startswith("<!doctype html>")
    assert 'data-spec="/api/v1/openapi.json"' in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui-bundle.js" in asset for asset in assets)
    for asset in assets:  # nothing from another host: the page works offline
        assert asset.startswith("/"), asset
        if asset.startswith("/console/"):
            fetched = await client.get(asset)
            assert fetched.status == 200, asset
            assert len(await fetched.read()) > 100, asset


async def test_an_archive_left_unfinished_shows_in_the_metrics_until_it_is_removed(
    service: Service,
) -> None:
    async def unfinished() -> float:
        return samples(await (await service.client.get("/metrics")).text())[
            "flowlog_archive_unfinished_seconds"
        ]

    assert await unfinished() == 0
    # An archive whose run failed after its plan an hour ago, as the projection holds it.
    await service.engine.pool.execute(
        "INSERT INTO archives (id, status, flows, created_at, updated_at, stream_version) "
        "VALUES ('stuck', 'Written', 3, now() - interval '1 hour', now(), 2), "
        "       ('done', 'Removed', 3, now() - interval '2 hours', now(), 3)"
    )
    assert 3600 <= await unfinished() < 7200
    await service.engine.pool.execute("UPDATE archives SET status = 'Removed' WHERE id = 'stuck'")
    assert await unfinished() == 0
