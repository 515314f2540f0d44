"""Definitions over REST: listed and described, registered declaratively (versioned), and run
by the reactor with the built-in executors, ``http`` against a local server."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowlog.workflow.errors import Code
from tests.api.conftest import Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    Client,
    create,
    detail,
    ok,
    post,
    refused,
    wait_status,
)

IN_CODE = ["backup", "fussy", "gated", "pausing"]


def spec(name: str, **nodes: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "nodes": nodes}


def node(name: str, executor: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": name, "executor": executor, **more}


NOOP = {"type": "noop"}


async def register(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = await ok(await post(client, DEFINITIONS, body))
    return data


async def state(client: Client, flow_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await ok(await client.get(f"{FLOWS}{flow_id}/state"))
    return found


class Remote:
    """A local HTTP service for the ``http`` executor: it records what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.polls: Counter[str] = Counter()
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        app.router.add_put("/hook", self.hook)
        app.router.add_post("/broken", self.broken)
        app.router.add_post("/submit", self.submit)
        app.router.add_get("/status/{operation}", self.status)
        self.server = TestServer(app)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append((request.method + " " + request.path, await request.json()))
        return web.json_response({"result": "hooked", "context": {"hooked": True}})

    async def broken(self, request: web.Request) -> web.Response:
        self.received.append((request.path, await request.json()))
        return web.Response(status=500, text="boom")

    async def submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((request.path, body))
        return web.json_response({"operationId": f"op-{body['context']['fate']}"})

    async def status(self, request: web.Request) -> web.Response:
        operation = request.match_info["operation"]
        self.polls[operation] += 1
        if self.polls[operation] < 3:
            return web.json_response({"status": "running"})
        if operation == "op-fail":
            return web.json_response({"status": "failed", "message": "disk full", "code": 7002})
        return web.json_response({"status": "finished", "result": "uploaded"})


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    found = Remote()
    await found.server.start_server()
    yield found
    await found.server.close()


# -- list and get -------------------------------------------------------------------------------


async def test_definitions_in_code_are_listed_and_described(service: Service) -> None:
    client = service.client
    listed = (await ok(await client.get(DEFINITIONS)))["definitions"]
    assert [d["name"] for d in listed] == IN_CODE
    for summary in listed:
        known = service.registry.get(summary["name"])
        assert summary == {
            "name": known.name,
            "latestVersion": known.version,
            "versions": 1,
            "nodeNames": list(known.node_names),
        }

    backup = await ok(await client.get(f"{DEFINITIONS}/backup"))
    known = service.registry.get("backup")
    assert backup["name"] == "backup"
    assert backup["latestVersion"] == known.version
    [version] = backup["versions"]
    assert set(version) == {"version", "registeredAt", "nodeNames", "definition"}
    assert version["version"] == known.version
    assert version["nodeNames"] == ["backup", "updateBackupRecord", "end"]
    assert version["definition"] == orjson.loads(orjson.dumps(known.describe()))
    assert datetime.fromisoformat(version["registeredAt"]).tzinfo is not None


async def test_an_unknown_definition_is_404(client: Client) -> None:
    body = await refused(await client.get(f"{DEFINITIONS}/nothing"), 404, Code.DEFINE_NOT_FOUND)
    assert "nothing" in body["message"]


# -- registering ----------------------------------------------------------------------------


async def test_a_registered_definition_runs_to_completion(client: Client) -> None:
    body = spec(
        "deploy",
        start=node("prepare", NOOP, success="wait"),
        wait=node("wait", {"type": "sleep", "seconds": 0.05}, success="last"),
        last=node("announce", NOOP),
    )
    registered = await register(client, body)
    assert registered["name"] == "deploy"
    assert re.fullmatch(r"[0-9a-f]{16}", registered["version"])
    assert registered["nodeNames"] == ["prepare", "wait", "announce"]

    listed = (await ok(await client.get(DEFINITIONS)))["definitions"]
    assert [d["name"] for d in listed] == sorted([*IN_CODE, "deploy"])
    described = await ok(await client.get(f"{DEFINITIONS}/deploy"))
    assert described["latestVersion"] == registered["version"]
    assert described["versions"][0]["definition"]["spec"]["nodes"]["wait"]["executor"] == {
        "type": "sleep",
        "seconds": 0.05,
    }

    flow_id = await create(client, "deploy")
    done = await wait_status(client, flow_id, {"Finished"})
    assert done["info"]["definitionVersion"] == registered["version"]
    assert done["nodeNames"] == ["prepare", "wait", "announce"]
    assert [(n["name"], n["status"]) for n in done["nodes"]] == [
        ("prepare", "Finished"),
        ("wait", "Finished"),
        ("announce", "Finished"),
    ]


async def test_a_changed_definition_is_a_new_version_and_flows_keep_theirs(
    client: Client,
) -> None:
    first = spec("job", start=node("one", NOOP, success="two"), two=node("two", NOOP))
    v1 = (await register(client, first))["version"]
    assert (await register(client, first))["version"] == v1  # the same: no new version
    assert len((await ok(await client.get(f"{DEFINITIONS}/job")))["versions"]) == 1
    old_flow = await create(client, "job", start=False)

    second = spec("job", start=node("uno", NOOP, success="two"), two=node("dos", NOOP))
    registered = await register(client, second)
    v2 = registered["version"]
    assert v2 != v1
    assert registered["nodeNames"] == ["uno", "dos"]
    described = await ok(await client.get(f"{DEFINITIONS}/job"))
    assert described["latestVersion"] == v2
    assert [(v["version"], v["nodeNames"]) for v in described["versions"]] == [
        (v1, ["one", "two"]),
        (v2, ["uno", "dos"]),
    ]
    [summary] = [d for d in (await ok(await client.get(DEFINITIONS)))["definitions"]
                 if d["name"] == "job"]  # fmt: skip
    assert (summary["latestVersion"], summary["versions"]) == (v2, 2)

    # The flow created before runs its own version; a new flow runs the latest.
    await ok(await post(client, FLOWS + "start", {"workFlowId": old_flow}))
    new_flow = await create(client, "job")
    old = await wait_status(client, old_flow, {"Finished"})
    new = await wait_status(client, new_flow, {"Finished"})
    assert (old["info"]["definitionVersion"], old["nodeNames"]) == (v1, ["one", "two"])
    assert [n["name"] for n in old["nodes"]] == ["one", "two"]
    assert (new["info"]["definitionVersion"], new["nodeNames"]) == (v2, ["uno", "dos"])
    assert [n["name"] for n in new["nodes"]] == ["uno", "dos"]


async def test_fail_retries_then_takes_the_fail_transition(client: Client) -> None:
    body = spec(
        "doomed",
        start=node(
            "explode",
            {"type": "fail", "code": 7100, "message": "nope"},
            fail="cleanup",
            retry={"maxAttempts": 2, "initialInterval": 0},
        ),
        cleanup=node("cleanup", NOOP),
    )
    await register(client, body)
    flow_id = await create(client, "doomed")
    failed = await wait_status(client, flow_id, {"Error"})
    assert (failed["info"]["errorCode"], failed["info"]["errorMessage"]) == (7100, "nope")
    nodes = (await state(client, flow_id))["nodes"]
    assert [(n["name"], n["status"], n["attempt"], n["errorCode"]) for n in nodes] == [
        ("explode", "Error", 1, 7100),
        ("explode", "Error", 2, 7100),
        ("cleanup", "Finished", 1, None),
    ]


async def test_a_node_that_runs_too_long_times_out(client: Client) -> None:
    body = spec("slow", start=node("nap", {"type": "sleep", "seconds": 30}, timeout=0.1))
    await register(client, body)
    flow_id = await create(client, "slow")
    failed = await wait_status(client, flow_id, {"Error"})
    assert failed["info"]["errorCode"] == Code.NODE_TIMEOUT
    assert [(n["name"], n["status"]) for n in failed["nodes"]] == [("nap", "Error")]


# -- the http executor ------------------------------------------------------------------------


async def test_http_calls_the_service_with_the_context(client: Client, remote: Remote) -> None:
    body = spec(
        "notify",
        start=node("call", {"type": "http", "url": remote.url("/hook")}, success="again"),
        again=node("callAgain", {"type": "http", "url": remote.url("/hook"), "method": "PUT"}),
    )
    await register(client, body)
    flow_id = await create(client, "notify", context={"clusterId": "c-9"})
    done = await wait_status(client, flow_id, {"Finished"})
    assert [(n["name"], n["result"]) for n in done["nodes"]] == [
        ("call", "hooked\n"),
        ("callAgain", "hooked\n"),
    ]
    assert [what for what, _ in remote.received] == ["POST /hook", "PUT /hook"]
    first, second = (sent for _, sent in remote.received)
    assert set(first) == {"flowId", "nodeId", "nodeName", "attempt", "context"}
    assert (first["flowId"], first["nodeId"], first["nodeName"], first["attempt"]) == (
        flow_id, f"{flow_id}.1", "call", 1,
    )  # fmt: skip
    assert first["context"]["clusterId"] == "c-9"
    assert "hooked" not in first["context"]
    assert second["context"]["hooked"] is True  # the first answer changed the context
    assert (await state(client, flow_id))["context"]["hooked"] is True


async def test_http_failure_fails_the_node(client: Client, remote: Remote) -> None:
    await register(
        client, spec("alarm", start=node("call", {"type": "http", "url": remote.url("/broken")}))
    )
    flow_id = await create(client, "alarm")
    failed = await wait_status(client, flow_id, {"Error"})
    assert failed["info"]["errorCode"] == Code.NODE_FAILED
    message = failed["info"]["errorMessage"]
    assert "answered 500" in message
    assert "boom" in message
    assert len(remote.received) == 1


async def test_http_polling_waits_for_the_operation(client: Client, remote: Remote) -> None:
    executor = {
        "type": "http",
        "url": remote.url("/submit"),
        "statusUrl": remote.url("/status/") + "{operationId}",
    }
    body = spec(
        "upload",
        start=node("upload", executor, kind="polling", pollInterval=0.05, success="last"),
        last=node("record", NOOP),
    )
    await register(client, body)

    good = await create(client, "upload", context={"fate": "good"})
    done = await wait_status(client, good, {"Finished"})
    upload = done["nodes"][0]
    assert (upload["name"], upload["operationId"], upload["status"]) == (
        "upload", "op-good", "Finished",
    )  # fmt: skip
    assert upload["result"].startswith("uploaded")
    assert remote.polls["op-good"] == 3

    bad = await create(client, "upload", context={"fate": "fail"})
    failed = await wait_status(client, bad, {"Error"})
    assert (failed["info"]["errorCode"], failed["info"]["errorMessage"]) == (7002, "disk full")
    assert remote.polls["op-fail"] == 3


# -- refused definitions ----------------------------------------------------------------------


WRONG: list[tuple[dict[str, Any], Code, str]] = [
    (spec("nostart", other=node("a", NOOP)), Code.INVALID_DEFINITION, "start"),
    (
        spec("dangling", start=node("a", NOOP, success="nowhere")),
        Code.INVALID_DEFINITION,
        "nowhere",
    ),
    (
        spec("twins", start=node("same", NOOP, success="b"), b=node("same", NOOP)),
        Code.INVALID_DEFINITION,
        "same name",
    ),
    (
        spec("pollnoop", start=node("a", NOOP, kind="polling")),
        Code.INVALID_DEFINITION,
        "statusUrl",
    ),
    (spec("backup", start=node("a", NOOP)), Code.INVALID_DEFINITION, "defined in code"),
    (spec("bad name", start=node("a", NOOP)), Code.BAD_INPUT, "name"),
    (spec("nosecs", start=node("a", {"type": "sleep"})), Code.BAD_INPUT, "seconds"),
    (spec("nourl", start=node("a", {"type": "http"})), Code.BAD_INPUT, "url"),
    (spec("unknown", start=node("a", {"type": "shell"})), Code.BAD_INPUT, "executor"),
    ({"name": "empty", "nodes": {}}, Code.BAD_INPUT, "nodes"),
    (
        spec("extra", start=node("a", NOOP, colour="red")),
        Code.BAD_INPUT,
        "colour",
    ),
]


async def test_a_wrong_definition_is_refused_and_changes_nothing(client: Client) -> None:
    before = await ok(await client.get(DEFINITIONS))
    for body, code, says in WRONG:
        refusal = await refused(await post(client, DEFINITIONS, body), 400, code)
        assert says in refusal["message"], refusal
        if body["name"] != "backup":
            await refused(await client.get(f"{DEFINITIONS}/{body['name']}"), 404,
                          Code.DEFINE_NOT_FOUND)  # fmt: skip
            await refused(
                await post(client, FLOWS, {"flowName": body["name"], "bizId": "", "bizType": ""}),
                404,
                Code.DEFINE_NOT_FOUND,
            )
    assert await ok(await client.get(DEFINITIONS)) == before
    assert await ok(await client.get(f"{DEFINITIONS}/backup")) == await ok(
        await client.get(f"{DEFINITIONS}/backup")
    )


async def test_a_flow_of_a_definition_registered_over_rest_shows_in_detail(
    client: Client,
) -> None:
    await register(client, spec("tiny", start=node("only", NOOP)))
    flow_id = await create(client, "tiny", start=False)
    found = await detail(client, flow_id)
    assert (found["info"]["name"], found["nodeNames"], found["nodes"]) == ("tiny", ["only"], [])


async def test_every_problem_of_a_definition_in_one_answer(client: Client) -> None:
    body = spec(
        "many",
        start=node("a", NOOP, kind="polling", success="nowhere"),
        b=node("a", NOOP, fail="elsewhere"),
    )
    refusal = await refused(await post(client, DEFINITIONS, body), 400, Code.INVALID_DEFINITION)
    message = refusal["message"]
    for problem in (
        "needs an http executor with a statusUrl",
        "'nowhere' does not exist",
        "same name 'a'",
        "'elsewhere' does not exist",
        "'b' cannot be reached",
    ):
        assert problem in message, (problem, message)


async def test_the_seeds_pause_spelling_is_accepted(client: Client) -> None:
    for spelling in ("PAUSE", "pause"):
        body = spec(f"pausing-{spelling}", start=node("a", {"type": "fail"}, fail=spelling))
        await register(client, body)
        flow_id = await create(client, f"pausing-{spelling}")
        stopped = await wait_status(client, flow_id, {"Stopped"})  # a failure pauses the flow
        assert stopped["nodes"][-1]["status"] == "Error"


async def test_max_interruptions_over_rest_and_versions_without_it_unchanged(
    client: Client,
) -> None:
    from flowlog.builtins import definition_from_spec
    from flowlog.wire.definitions import DefinitionSpec

    plain = spec("capped", start=node("a", NOOP))
    dumped = DefinitionSpec.model_validate(plain).model_dump(mode="json")
    assert "maxInterruptions" not in dumped["nodes"]["start"]  # the stored spec as before
    before = definition_from_spec(plain).version
    capped = spec("capped", start=node("a", NOOP, maxInterruptions=1))
    registered = await register(client, capped)
    assert registered["version"] != before
    assert definition_from_spec(capped).node("start").max_interruptions == 1
    described = await ok(await client.get(f"{DEFINITIONS}/capped"))
    assert described["versions"][-1]["definition"]["nodes"]["start"]["maxInterruptions"] == 1
    too_many = spec("capped", start=node("a", NOOP, maxInterruptions=101))
    await refused(await post(client, DEFINITIONS, too_many), 400, Code.BAD_INPUT)
