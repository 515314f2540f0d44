"""The console's screenshots in docs/console/, made again from a live ``flowlog serve --demo``
so that they stay true:

    .venv/bin/python -m tests.browser.screenshots docs/console

It serves a scratch database of the PostgreSQL that DATABASE_URL names (else an embedded one),
waits for the demo flows to settle, and photographs each page in Chromium at 1280x800 and on a
phone (390x844). ``tests/browser/test_screenshots.py`` runs it in CI, into a temporary folder.
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path
from typing import Any

from flowlog.config import Settings
from flowlog.database import provide_database
from tests.browser.conftest import CHROMIUM, DESKTOP, PHONE, Console, run_async, running_console

SHOTS = (
    "flows.png", "flow.png", "waiting.png", "time-travel.png", "retry.png", "bulk.png",
    "fleet.png", "children.png", "definition.png", "schedule.png", "api.png",
    "phone-flows.png", "phone-flow.png", "task.png", "queues.png", "flow-control.png",
    "flow-control-list.png",
)  # fmt: skip
TALL = {"width": DESKTOP["width"], "height": 1160}
"""A fleet's page: its graph, its children and its timeline's lanes in one picture."""


def make_screenshots(server_url: str, out: Path) -> list[Path]:
    from flowlog.bench.harness import discard_database
    from flowlog.database import create_database, with_database
    from flowlog.migrate import migrate_database

    out.mkdir(parents=True, exist_ok=True)
    template = f"flowlog_shots_{secrets.token_hex(4)}"
    run_async(create_database(server_url, template))
    try:
        run_async(migrate_database(with_database(server_url, template)))
        # Leases long enough that the tasks photographed are still held.
        with running_console(server_url, template, "--demo", lease_seconds=60) as console:
            flows = _settled_demo(console)
            flows["restore"] = _waiting_restore(console)
            return _photograph(console, flows, out)
    finally:
        run_async(discard_database(server_url, template))


def _settled_demo(console: Console) -> dict[str, str]:
    """The demo flows by bizId, once each has reached the state the demo gives it."""
    wanted = {
        "demo-cluster-1": "Finished", "demo-cluster-2": "Error", "demo-cluster-3": "Finished",
        "demo-cluster-4": "Stopped", "demo-cluster-5": "Canceled", "demo-cluster-6": "Processing",
        "demo-cluster-7": "Initializing", "demo-fleet-1": "Finished",
    }  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        listed = console.api("GET", "/api/v1/workflow/?bizType=demo&pageSize=50")
        found = {f["bizId"]: f for f in listed["data"]["workFlows"]}
        if all(found.get(b, {}).get("status") == s for b, s in wanted.items()):
            return {b: f["id"] for b, f in found.items()}
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo flows did not settle: {found}")
        time.sleep(0.2)


def _waiting_restore(console: Console) -> str:
    """A restore of the first demo cluster, waiting for a person's approval."""
    answer = console.api("POST", "/api/v1/workflow/", {
        "flowName": "restore", "bizId": "demo-cluster-1", "bizType": "demo", "start": True,
        "context": {"clusterId": "demo-1"},
    })  # fmt: skip
    flow_id: str = answer["data"]["workFlowId"]
    console.wait_waiting(flow_id, within=60)
    return flow_id


def render_spec(name: str, queue: str) -> dict[str, Any]:
    """prepare -> render (offered on ``queue``, run by a worker) -> publish."""
    return {
        "name": name,
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "render"},
            "render": {"name": "render", "queue": queue, "success": "publish"},
            "publish": {"name": "publish", "executor": {"type": "noop"}},
        },
    }


def offer(console: Console, flow_name: str, biz_id: str) -> str:
    """A new flow of ``flow_name``, once its render node is offered on its queue."""
    return offered(console, console.create(flowName=flow_name, bizId=biz_id, bizType="demo"))


def offered(console: Console, flow_id: str) -> str:
    """``flow_id``, once its running node is offered on its queue."""
    deadline = time.monotonic() + 30
    while console.api("GET", f"/api/v1/workflow/{flow_id}")["data"].get("task") is None:
        assert time.monotonic() < deadline, f"{flow_id} was never offered"
        time.sleep(0.05)
    return flow_id


def take(console: Console, queue: str, worker: str, details: Any = None) -> dict[str, Any]:
    """A task of ``queue`` leased to ``worker`` (and its first heartbeat's ``details``)."""
    body = {"queue": queue, "workerId": worker, "max": 1, "waitSeconds": 5}
    answer = console.api("POST", "/api/v1/tasks/poll", body)
    [task] = answer["data"]["tasks"]
    if details is not None:
        beat = {"taskToken": task["taskToken"], "details": details}
        assert console.api("POST", "/api/v1/tasks/heartbeat", beat)["code"] == 0
    found: dict[str, Any] = task
    return found


def _tasks(console: Console) -> str:
    """Reports rendered by workers on the queue ``render`` (two held, two waiting) and a
    thumbnail on ``gpu``, which no worker polls; the flow whose task render-box-1 holds."""
    for name, queue in (("render-report", "render"), ("thumbnail", "gpu")):
        answer = console.api("POST", "/api/v1/workflow-definitions", render_spec(name, queue))
        assert answer["code"] == 0, answer
    held = offer(console, "render-report", "report-2026-11")
    offer(console, "render-report", "report-2026-12")
    take(console, "render", "render-box-1", {"pages": 12, "of": 40, "step": "charts"})
    take(console, "render", "render-box-2", {"pages": 3, "of": 8})
    offer(console, "render-report", "report-2027-01")
    offer(console, "render-report", "report-2027-02")
    offer(console, "thumbnail", "cover-7")
    return held


def limited_spec(name: str, queue: str) -> dict[str, Any]:
    """One export per cluster at a time (``context.clusterId``): prepare -> export (offered
    on ``queue``) -> publish."""
    return {
        "name": name,
        "concurrency": {"key": "context.clusterId", "limit": 1},
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "export"},
            "export": {"name": "export", "queue": queue, "success": "publish"},
            "publish": {"name": "publish", "executor": {"type": "noop"}},
        },
    }


def held_back(console: Console, flow_id: str, ahead: int) -> dict[str, Any]:
    """What the flow waits for on flow control (its detail's first ``waitingFor``), once
    ``ahead`` flows wait ahead of it."""
    deadline = time.monotonic() + 30
    while True:
        found = console.api("GET", f"/api/v1/workflow/{flow_id}")["data"].get("waitingFor")
        if found and found[0]["ahead"] == ahead:
            said: dict[str, Any] = found[0]
            return said
        assert time.monotonic() < deadline, f"{flow_id} never waited behind {ahead}: {found}"
        time.sleep(0.05)


def _flow_control(console: Console) -> str:
    """Exports of two clusters, one at a time per cluster: the first of each runs (its export
    offered on ``exports``, which no worker polls), the others wait in line, one of them
    urgent; and a mail whose rate limit spaces its sends. The flow third in line."""
    spec = limited_spec("cluster-export", "exports")
    send = {"name": "send", "executor": {"type": "noop"},
            "rateLimit": {"key": "context.region", "limit": 2, "periodSeconds": 3600}}  # fmt: skip
    mail = {"name": "report-mail", "nodes": {"start": send}}
    for definition in (spec, mail):
        answer = console.api("POST", "/api/v1/workflow-definitions", definition)
        assert answer["code"] == 0, answer
    flows = []
    for n, (cluster, priority) in enumerate((("eu-1", 0), ("eu-1", 0), ("eu-1", 5),
                                             ("eu-1", 0), ("us-2", 0))):  # fmt: skip
        flows.append(console.create(flowName="cluster-export", bizId=f"export-{n + 1}",
                                    bizType="exports", priority=priority,
                                    context={"clusterId": cluster}))  # fmt: skip
        if n == 0:  # it holds the slot before the others ask: they wait behind it in order
            offered(console, flows[0])
    held_back(console, flows[3], ahead=2)
    offered(console, flows[4])
    mails = [console.create(flowName="report-mail", bizId=f"mail-{n + 1}", bizType="exports",
                            context={"region": "eu"}) for n in range(2)]  # fmt: skip
    held_back(console, mails[1], ahead=0)  # the first sent now, the second in half an hour
    return flows[2]


def _photograph(console: Console, flows: dict[str, str], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    retried = flows["demo-cluster-3"]
    failed = flows["demo-cluster-2"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport=DESKTOP)

        def shot(name: str, *, full: bool = False) -> None:
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / name), full_page=full)

        page.goto(console.url("/"))
        shot("flows.png")
        page.goto(console.url(f"/flows/{retried}"))
        shot("flow.png", full=True)
        page.goto(console.url(f"/flows/{flows['restore']}"))
        shot("waiting.png")
        page.goto(console.url(f"/flows/{retried}?version=9"))  # updateBackupRecord failed
        page.evaluate("document.getElementById('travel').scrollIntoView()")
        shot("time-travel.png")
        page.goto(console.url(f"/flows/{failed}"))
        page.locator("#flow-actions").get_by_role("button", name="Retry").click()
        page.get_by_label("Reason (recorded in the history)").fill("the object store is back")
        page.locator("#action-context").fill('{"failAt": ""}')
        shot("retry.png")
        page.goto(console.url("/?status=Processing"))
        page.locator("#select-page").check()
        page.locator("#bulk").get_by_role("button", name="Stop").click()
        page.get_by_label("Reason (recorded in the history)").fill("maintenance window")
        shot("bulk.png")
        fleet = flows["demo-fleet-1"]
        page.set_viewport_size(TALL)
        page.goto(console.url(f"/flows/{fleet}"))
        page.evaluate("document.getElementById('graph-h').scrollIntoView()")
        shot("fleet.png")
        page.set_viewport_size(DESKTOP)
        page.goto(console.url(f"/?parent={fleet}"))
        shot("children.png")
        page.goto(console.url("/definitions/backup"))
        shot("definition.png")
        page.goto(console.url("/schedules/nightly-backup"))
        shot("schedule.png")
        page.goto(console.url("/api/v1/docs"))
        page.locator("#operations-workflow-list_flows").wait_for()
        shot("api.png")
        phone = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        page = phone
        page.goto(console.url("/"))
        shot("phone-flows.png", full=True)
        page.goto(console.url(f"/flows/{retried}"))
        shot("phone-flow.png")
        # Last: the demo's own flows are in the pictures above without these.
        task = _tasks(console)
        page = browser.new_page(viewport=DESKTOP)
        page.goto(console.url(f"/flows/{task}"))
        shot("task.png", full=True)
        page.goto(console.url("/queues"))
        shot("queues.png")
        waiter = _flow_control(console)
        page.goto(console.url(f"/flows/{waiter}"))
        shot("flow-control.png")
        page.goto(console.url("/?bizType=exports"))
        shot("flow-control-list.png")
        browser.close()
    return [out / name for name in SHOTS]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.browser.screenshots OUT_DIR", file=sys.stderr)
        return 2
    with provide_database(Settings.from_env()) as database:
        made = make_screenshots(database.owner, Path(argv[0]))
    for path in made:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
