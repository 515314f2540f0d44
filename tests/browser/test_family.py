"""A fleet backup (the demo's map of backups, then two branches side by side) in Chromium: the
map's counts on its node, the branches as lanes, time travel across them, and the failed
children of the map listed by parent and retried in bulk, one by one or as a whole filter."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console

QUICK = {"slowSeconds": 0, "uploadSeconds": 0}


def node(page: Any, key: str) -> Any:
    return page.locator(f'#panel g.node[data-key="{key}"]')


def rows(page: Any) -> Any:
    return page.locator("#flow-rows tr[data-id]")


def fleet(console: Console, tag: str, clusters: list[str], fail_at: Any) -> str:
    return console.create(flowName="fleet-backup", bizType=tag, bizId=f"{tag}-fleet",
                          context={**QUICK, "clusters": clusters, "failAt": fail_at})  # fmt: skip


def test_a_fleets_page_counts_its_map_and_shows_its_branches_as_lanes(
    page: Any, console: Console, tag: str
) -> None:
    flow_id = fleet(console, tag, ["c-1", "c-2", "c-3"], {"c-2": "updateBackupRecord"})
    console.wait_status(flow_id, "Finished", within=60)
    page.goto(console.url(f"/flows/{flow_id}"))
    each = node(page, "start")
    expect(each).to_have_class("node st-finished parent")
    expect(each.locator("text.node-detail")).to_have_text("map: backup over clusters")
    expect(each.locator("text.node-counts")).to_have_text("2/3 finished · 1 failed")
    expect(node(page, "checks").locator("text.node-counts")).to_have_text("2/2 finished")
    expect(page.locator("#panel path.edge-fork[marker-end]")).to_have_count(2)
    expect(page.locator("#panel path.edge-join[marker-end]")).to_have_count(2)
    expect(node(page, "verify")).to_have_class("node st-finished")  # run by its branch
    lanes = page.locator("#panel table.timeline tr.lane")
    expect(lanes).to_have_count(2)
    expect(lanes.nth(0)).to_contain_text("branch verify verifyBackups")
    expect(lanes.nth(1)).to_contain_text("branch report sendReport")
    expect(lanes.locator("rect.seg-run")).to_have_count(2)
    children = page.locator("#panel section.children")
    expect(children.locator(".kin-counts")).to_have_text(["2/3 finished · 1 failed",
                                                          "2/2 finished"])  # fmt: skip

    # Back to the moment the branches were started: both run, on the parent's time axis.
    forked = next(e["version"] for e in console.events(flow_id)
                  if e["type"] == "ChildrenStarted" and e["data"]["total"] == 2)  # fmt: skip
    page.locator(f"#history-rows a[data-version='{forked}']").click()
    expect(page.locator("#at-title")).to_have_text(f"As it was at version {forked}")
    expect(lanes).to_have_count(2)
    expect(children.locator(".kin-counts").nth(1)).to_have_text("0/2 finished · 2 running")
    expect(node(page, "checks")).to_have_class("node st-processing current parent")
    page.locator("#travel-prev").click()
    expect(children.locator(".kin-list")).to_contain_text("not created yet")

    # A branch names its parent and leads back to it.
    page.goto(console.url(f"/flows/{flow_id}"))
    lanes.nth(0).get_by_role("link", name="branch verify").click()
    expect(page.locator("p.family")).to_have_text(re.compile(
        rf"^child 0 of fleet-backup {tag}-fleet {flow_id[:8]} \(node verifyAndReport, "
        r"branch verify\)$"
    ))  # fmt: skip
    page.locator("p.family a").click()
    expect(page).to_have_url(console.url(f"/flows/{flow_id}"))

    # The failed child: listed by its parent, retried from there, and it finishes.
    page.get_by_role("link", name="the 1 failed").click()
    expect(page.locator("h1")).to_contain_text(f"Children of fleet-backup {tag}-fleet")
    expect(rows(page)).to_have_count(1)
    failed = rows(page).first
    expect(failed.locator(".child-of")).to_have_text("#1")
    expect(failed.locator("td.status .badge")).to_have_text("Error")
    child = failed.get_attribute("data-id")
    failed.locator("input.pick").check()
    page.locator("#bulk").get_by_role("button", name="Retry").click()
    dialog = page.locator("#action-dialog")
    dialog.get_by_label("Reason (recorded in the history)").fill("the record store is back")
    dialog.locator("#action-context").fill('{"failAt": ""}')
    dialog.get_by_role("button", name="Retry 1 flow").click()
    expect(dialog.locator("#action-result")).to_contain_text("Retry: 1 done, 0 refused.")
    assert child is not None
    console.wait_status(child, "Finished")


def test_every_failed_child_of_a_map_is_retried_with_the_parent_filter(
    page: Any, console: Console, tag: str
) -> None:
    # A map that waits for every backup, whatever their end: twelve children in Error.
    tolerant = {"name": f"{tag}-all", "nodes": {"start": {
        "name": "backupAll", "kind": "map", "flow": "backup", "items": "clusters",
        "itemKey": "clusterId", "maxConcurrency": 12, "toleratedFailures": "100%"}}}  # fmt: skip
    assert console.api("POST", "/api/v1/workflow-definitions", tolerant)["code"] == 0
    clusters = [f"c-{i}" for i in range(12)]
    flow_id = console.create(flowName=f"{tag}-all", bizType=tag,
                             context={**QUICK, "clusters": clusters,
                                      "failAt": "updateBackupRecord"})  # fmt: skip
    other = console.create(bizType=tag, context={**QUICK, "failAt": "upload"})  # no child
    console.wait_status(flow_id, "Finished", within=60)
    console.wait_status(other, "Error")
    page.goto(console.url(f"/?parent={flow_id}&status=Error&pageSize=10"))
    expect(rows(page)).to_have_count(10)
    expect(page.locator("#counts a", has_text="Error")).to_contain_text("12")
    page.locator("#select-page").check()
    page.get_by_role("button", name="Select all 12 flows matching this filter").click()
    page.locator("#bulk").get_by_role("button", name="Retry").click()
    dialog = page.locator("#action-dialog")
    dialog.get_by_label("Reason (recorded in the history)").fill("the record store is back")
    dialog.locator("#action-context").fill('{"failAt": ""}')
    dialog.get_by_role("button", name="Retry 12 flows").click()
    expect(dialog.locator("#action-result")).to_contain_text("Retry: 12 done, 0 refused.")
    children = console.api("GET", f"/api/v1/workflow/?parentFlowId={flow_id}&pageSize=20")
    listed = children["data"]["workFlows"]
    assert sorted(f["childIndex"] for f in listed) == list(range(12))
    for child in listed:
        console.wait_status(child["id"], "Finished")
    # Only the parent's children were retried: a failed flow that is no child of it stays.
    assert console.status(other) == "Error"
    assert console.status(flow_id) == "Finished"
