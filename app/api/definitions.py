"""The definitions' routes: those recorded in the log (each version, with its nodes), and
registering one made of built-in executors (app/builtins.py)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import caller_of, service_of, tenant_of
from flowlog.api.context import context_of
from flowlog.api.operations import Api
from flowlog.api.queries import Q
from flowlog.api.replicas import read_pool
from flowlog.audit.migrate_flows import migrate_flows
from flowlog.builtins import definition_from_spec
from flowlog.wire.definitions import (
    DefinitionDetail,
    DefinitionList,
    DefinitionSpec,
    DefinitionSummary,
    DefinitionVersion,
    RegisteredResponse,
)
from flowlog.wire.migrations import MigrationRequest, MigrationResponse
from flowlog.workflow.errors import Code, DefinitionNotFound, WorkflowError

api = Api()
DEFINITIONS = ("definitions",)


@api.route(
    "GET",
    "/api/v1/workflow-definitions",
    summary="The definitions recorded in the log",
    response=DefinitionList,
    errors=(),
    tags=DEFINITIONS,
    role=Role.VIEWER,
)
async def list_definitions(request: web.Request) -> DefinitionList:
    pool = await read_pool(request)
    by_name: dict[str, list[Any]] = {}
    for row in await pool.fetch(Q.definitions, tenant_of(request)):
        by_name.setdefault(row["name"], []).append(row)
    return DefinitionList(
        definitions=[
            DefinitionSummary(
                name=name,
                latestVersion=rows[-1]["version"],
                versions=len(rows),
                nodeNames=list(rows[-1]["node_names"]),
            )
            for name, rows in sorted(by_name.items())
        ]
    )


@api.route(
    "GET",
    "/api/v1/workflow-definitions/{name}",
    summary="A definition: every version, with its nodes",
    response=DefinitionDetail,
    errors=(404,),
    tags=DEFINITIONS,
    role=Role.VIEWER,
)
async def get_definition(request: web.Request, name: str) -> DefinitionDetail:
    rows = await (await read_pool(request)).fetch(Q.definitions_named, name, tenant_of(request))
    if not rows:
        raise DefinitionNotFound(name)
    versions = [
        DefinitionVersion(
            version=r["version"],
            registeredAt=r["registered_at"],
            nodeNames=list(r["node_names"]),
            definition=r["definition"],
        )
        for r in rows
    ]
    return DefinitionDetail(name=name, latestVersion=versions[-1].version, versions=versions)


@api.route(
    "POST",
    "/api/v1/workflow-definitions",
    summary="Register a definition made of "
    "built-in executors (a changed definition is a new version; running flows keep "
    "theirs)",
    body=DefinitionSpec,
    response=RegisteredResponse,
    errors=(400, 409),
    tags=DEFINITIONS,
    role=Role.ADMIN,
)
async def register_definition(request: web.Request, body: DefinitionSpec) -> RegisteredResponse:
    definition = definition_from_spec(body)
    registry = request.app[keys.ENGINE].registry
    with contextlib.suppress(DefinitionNotFound):
        if registry.get(body.name).spec is None:
            raise WorkflowError(
                Code.INVALID_DEFINITION,
                f"{body.name} is defined in code; a definition over REST needs another name",
            )
    ctx = context_of(request)
    version = await service_of(request).register_workflow(
        definition, caller_of(ctx), tenant_of(request)
    )
    return RegisteredResponse(
        name=definition.name, version=version, nodeNames=list(definition.node_names)
    )


@api.route(
    "POST",
    "/api/v1/workflow-definitions/{name}/migrations",
    summary="Move running flows to another version of their definition (a dry run says "
    "which would move and which are blocked, and why; applying records FlowMigrated on each "
    "clean flow; one migration at a time per definition)",
    body=MigrationRequest,
    response=MigrationResponse,
    errors=(400, 404, 409, 422),
    tags=DEFINITIONS,
    role=Role.ADMIN,
)
async def migrate_definition_flows(
    request: web.Request, name: str, body: MigrationRequest
) -> MigrationResponse:
    ctx = context_of(request)
    return await migrate_flows(service_of(request), name, body, caller_of(ctx), tenant_of(request))
