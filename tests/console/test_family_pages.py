"""A parent's and a child's pages as the server renders them, on a real PostgreSQL with the
reactor running: the map's counts on its node and in the Children section, the branches as
lanes (now and at an earlier version), the line that names a child's parent, and the list of
a parent's children with their index or branch, counted, and bulk-selectable as a filter."""

from __future__ import annotations

import html
import re

from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    NO_FLOW,
    A,
    create,
    events,
    ok,
    post,
    wait_status,
)
from tests.console.test_access import session_of
from tests.console.test_pages import page, row_ids

BACKUP = {"name": "cluster-backup",
          "nodes": {"start": {"name": "backUp", "executor": {"type": "noop"}}}}  # fmt: skip
FLEET = {
    "name": "backup-fleet",
    "nodes": {
        "start": {"name": "backupEach", "kind": "map", "items": "clusters",
                  "itemKey": "clusterId", "flow": "cluster-backup", "maxConcurrency": 2,
                  "resultsKey": "backups", "success": "checks"},
        "checks": {"name": "verifyAndReport", "kind": "parallel",
                   "branches": {"verify": "verify1", "report": "report1"}, "success": "again"},
        "again": {"name": "backUpMain", "kind": "subflow", "flow": "cluster-backup",
                  "context": {"clusterId": "c-main"}, "success": "done"},
        "verify1": {"name": "verify", "executor": {"type": "sleep", "seconds": 0.3}},
        "report1": {"name": "report", "executor": {"type": "noop"}},
        "done": {"name": "done", "executor": {"type": "noop"}},
    },
}  # fmt: skip


def section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def words(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


async def test_a_fleets_pages_show_its_children(service: Service) -> None:
    client = service.client
    for spec in (BACKUP, FLEET):
        await ok(await post(client, DEFINITIONS, spec))
    fleet = await create(client, "backup-fleet", biz_id="fleet-9",
                         context={"clusters": ["c-1", "c-2", "c-3"]})  # fmt: skip
    await wait_status(client, fleet, {"Finished"}, within=30)
    text = await page(client, f"/flows/{fleet}")

    # The map node counts its children; the parallel node forks and its branches join.
    each = section(text, 'data-key="start">', "</g>")
    assert "map: cluster-backup over clusters" in each
    assert '<text x="10" y="71" class="node-counts">3/3 finished</text>' in each
    for kind in ("fork", "join"):  # (the legend draws a fork too, with no arrow)
        assert len(re.findall(rf'class="edge edge-{kind}" d="[^"]+" marker-end', text)) == 2
    # The branches' nodes ran in their children: coloured by them.
    assert re.search(r'<g class="node st-finished[^"]*" [^>]*data-key="verify1"', text)

    children = words(section(text, '<section class="children"', "</section>"))
    assert "backupEach (start, map, execution #1) 3/3 finished" in children
    assert "List the children of this flow" in children
    assert "failed" not in children
    assert "verifyAndReport (checks, parallel, execution #2) 2/2 finished" in children
    assert re.search(r"branch verify \w{8} Finished branch report \w{8} Finished", children)
    assert re.search(r"backUpMain \(again, subflow, execution #3\) 1/1 finished child 0 \w{8} "
                     r"Finished", children)  # fmt: skip
    assert "sub-flow: cluster-backup" in section(text, 'data-key="again">', "</g>")

    timeline = section(text, '<table class="timeline">', "</table>")
    lanes = re.findall(r'<tr class="lane" data-branch="(\w+)">', timeline)
    assert lanes == ["verify", "report"]  # under the parallel node, in their order
    assert timeline.index("verifyAndReport") < timeline.index('class="lane"')

    # At the version where the parallel node started its branches, both run (or are about
    # to); at the one before, neither exists yet.
    history = await events(client, fleet)
    forked = next(e["version"] for e in history
                  if e["type"] == "ChildrenStarted" and e["data"]["total"] == 2)  # fmt: skip
    then = await page(client, f"/flows/{fleet}?version={forked}")
    assert "As the flow had counted them at version" in then
    assert "0/2 finished · 2 running" in then
    before = await page(client, f"/flows/{fleet}?version={forked - 1}")
    assert words(section(before, '<section class="children"', "</section>")).count(
        "not created yet") == 2  # fmt: skip

    # The children: listed, counted and selectable as a filter.
    listed = await page(client, f"/?parent={fleet}")
    assert len(row_ids(listed)) == 6
    assert "Children of backup-fleet fleet-9" in words(section(listed, "<h1>", "</h1>"))
    assert '<span class="count-label">Finished</span> <span class="count">6</span>' in listed
    marks = re.findall(r'<span class="child-of">(.*?)</span></td>', listed)
    assert sorted(words(m) for m in marks) == ["#0", "#0", "#1", "#2", "branch report",
                                               "branch verify"]  # fmt: skip
    assert f"{{&#34;parentFlowId&#34;: &#34;{fleet}&#34;}}" in listed
    assert f'<input type="hidden" name="parent" value="{fleet}">' in listed
    report_only = await page(client, f"/?parent={fleet}&flowName=backup-fleet")
    assert len(row_ids(report_only)) == 2
    assert "does not exist" in await page(client, f"/?parent={NO_FLOW}", 404)

    # A child says whose it is, and which node and branch made it.
    found = await ok(await client.get(FLOWS + "?bizId=fleet-9/report"), paged=True)
    report = found["data"]["workFlows"][0]
    child_page = await page(client, f"/flows/{report['id']}")
    line = words(section(child_page, '<p class="family">', "</p>"))
    assert re.fullmatch(rf"child 1 of backup-fleet fleet-9 {fleet[:8]} \(node "
                        r"verifyAndReport, branch report ?\)", line), line  # fmt: skip
    everywhere = words(await page(client, "/"))
    assert f"branch report of {fleet[:8]}" in everywhere


async def test_another_tenant_cannot_list_a_flows_children(make_service: MakeService) -> None:
    guarded = await make_service(tokens=TOKENS)
    client = guarded.client
    for spec in (BACKUP, FLEET):
        await ok(await post(client, DEFINITIONS, spec, A))
    fleet = await create(client, "backup-fleet", biz_id="fleet-a", headers=A,
                         context={"clusters": ["c-1"]})  # fmt: skip
    await wait_status(client, fleet, {"Finished"}, within=30, headers=A)
    alice, bob = await session_of(client, "token-a"), await session_of(client, "token-b")
    mine = await client.get(f"/?parent={fleet}", headers=alice)
    assert mine.status == 200
    assert len(row_ids(await mine.text())) == 4
    theirs = await client.get(f"/?parent={fleet}", headers=bob)
    assert theirs.status == 404  # as the flow's own page: another tenant's flow is unknown
    text = await theirs.text()
    assert "does not exist" in text
    assert "fleet-a" not in text
