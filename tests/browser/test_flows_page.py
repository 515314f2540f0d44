"""The flows page in Chromium: filters in the URL (shared links, Back), keyset pages, rows that
update live without a reload, and bulk actions."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console


def rows(page: Any) -> Any:
    return page.locator("#flow-rows tr[data-id]")


def test_filters_live_in_the_url_and_pages_follow_keys(
    page: Any, console: Console, tag: str
) -> None:
    waiting = [console.create(start=False, bizType=tag, bizId=f"w-{i}") for i in range(12)]
    done = console.create(bizType=tag, bizId="done", context={"slowSeconds": 0, "uploadSeconds": 0})
    console.wait_status(done, "Finished")

    page.goto(console.url(f"/?bizType={tag}&pageSize=10"))
    expect(rows(page)).to_have_count(10)
    expect(page.locator("#list-total")).to_have_text("13")
    newest = [*reversed(waiting), done][:10]
    assert [rows(page).nth(i).get_attribute("data-id") for i in range(10)] == [done, *newest[:9]]

    page.get_by_role("link", name="Older →").click()
    expect(rows(page)).to_have_count(3)
    assert "cursor=" in page.url
    assert f"bizType={tag}" in page.url
    page.go_back()
    expect(rows(page)).to_have_count(10)

    # A status count is a link that filters, keeping the other filters.
    page.locator("#counts a", has_text="Finished").click()
    expect(rows(page)).to_have_count(1)
    assert rows(page).first.get_attribute("data-id") == done
    assert re.search(r"status=Finished", page.url)
    assert f"bizType={tag}" in page.url
    page.go_back()
    expect(rows(page)).to_have_count(10)

    # The filter form: empty fields stay out of the URL; the link can be shared.
    page.get_by_label("bizId").fill("w-3")
    page.get_by_role("button", name="Filter").click()
    expect(rows(page)).to_have_count(1)
    assert "bizId=w-3" in page.url
    assert "createdFrom" not in page.url
    shared = page.url
    page.goto(console.url("/"))
    page.goto(shared)
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_label("bizId")).to_have_value("w-3")

    # Jump to a flow by its id.
    page.get_by_label("Flow id").fill(done)
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(console.url(f"/flows/{done}"))


def test_new_flows_and_status_changes_arrive_without_a_reload(
    page: Any, console: Console, tag: str
) -> None:
    first = console.create(start=False, bizType=tag)
    page.goto(console.url(f"/?bizType={tag}"))
    expect(rows(page)).to_have_count(1)
    page.evaluate("window.notReloaded = true")
    page.locator(f'input.pick[value="{first}"]').check()

    second = console.create(bizType=tag, context={"slowSeconds": 0, "uploadSeconds": 0})
    expect(rows(page)).to_have_count(2)
    expect(page.locator(f'tr[data-id="{second}"] .badge')).to_have_text("Finished", timeout=20_000)
    assert console.api("POST", "/api/v1/workflow/cancel", {"workFlowId": first})["code"] == 0
    expect(page.locator(f'tr[data-id="{first}"] .badge')).to_have_text("Canceled")
    expect(page.locator("#list-total")).to_have_text("2")
    assert page.evaluate("window.notReloaded") is True
    # The selection survives the refreshes.
    expect(page.locator(f'input.pick[value="{first}"]')).to_be_checked()


def test_bulk_cancel_of_selected_flows_and_of_a_whole_filter(
    page: Any, console: Console, tag: str
) -> None:
    running = [console.create(bizType=tag, context={"slowSeconds": 60}) for _ in range(3)]
    finished = console.create(bizType=tag, context={"slowSeconds": 0, "uploadSeconds": 0})
    console.wait_status(finished, "Finished")
    page.goto(console.url(f"/?bizType={tag}"))
    for flow_id in running:
        page.locator(f'input.pick[value="{flow_id}"]').check()
    page.locator(f'input.pick[value="{finished}"]').check()
    expect(page.locator("#bulk-selected")).to_have_text("4 flows selected.")
    page.locator("#bulk").get_by_role("button", name="Cancel").click()
    dialog = page.locator("#action-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Cancel 4 flows")
    dialog.get_by_label("Reason (recorded in the history)").fill("cluster decommissioned")
    dialog.get_by_role("button", name="Cancel 4 flows").click()
    expect(dialog.locator("#action-result")).to_contain_text("Cancel: 3 done, 1 refused.")
    expect(dialog.locator("#action-result")).to_contain_text("40107")  # the finished one
    dialog.get_by_role("button", name="Close").click()
    for flow_id in running:
        expect(page.locator(f'tr[data-id="{flow_id}"] .badge')).to_have_text("Canceled")
        asked = [e for e in console.events(flow_id) if e["type"] == "CancelRequested"]
        assert asked[0]["reason"] == "cluster decommissioned"
        assert asked[0]["actor"] == "anonymous"
    assert console.status(finished) == "Finished"

    # Every flow matching the filter, beyond this page.
    other = f"{tag}-all"
    waiting = [console.create(start=False, bizType=other) for _ in range(12)]
    page.goto(console.url(f"/?bizType={other}&pageSize=10"))
    page.locator("#select-page").check()
    page.get_by_role("button", name="Select all 12 flows matching this filter").click()
    expect(page.locator("#bulk-selected")).to_contain_text("All 12 flows")
    page.locator("#bulk").get_by_role("button", name="Cancel").click()
    dialog.get_by_label("Reason (recorded in the history)").fill("all of them")
    dialog.get_by_role("button", name="Cancel 12 flows").click()
    expect(dialog.locator("#action-result")).to_contain_text("Cancel: 12 done, 0 refused.")
    assert {console.status(flow_id) for flow_id in waiting} == {"Canceled"}


def test_a_live_refresh_keeps_the_row_in_view_where_it_was(
    page: Any, console: Console, tag: str
) -> None:
    for i in range(40):
        console.create(start=False, bizType=tag, bizId=f"r-{i}")
    page.goto(console.url(f"/?bizType={tag}&pageSize=50"))
    expect(rows(page)).to_have_count(40)
    watched = rows(page).nth(20)
    watched.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 200)")
    flow_id = watched.get_attribute("data-id")
    top = watched.bounding_box()["y"]
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0

    console.create(start=False, bizType=tag, bizId="newest")  # a row above the one in view
    expect(rows(page)).to_have_count(41)
    same = page.locator(f'#flow-rows tr[data-id="{flow_id}"]')
    assert abs(same.bounding_box()["y"] - top) < 2  # still where the operator was looking
    assert page.evaluate("window.scrollY") > scrolled


def test_a_flow_waiting_for_a_person_and_one_that_failed_say_so(
    page: Any, console: Console, tag: str
) -> None:
    failed = console.create(bizType=tag, bizId="broken",
                            context={"failAt": "upload", "slowSeconds": 0})  # fmt: skip
    restore = console.create(flowName="restore", bizType=tag, bizId="restore-1",
                             context={"clusterId": "c-9"})  # fmt: skip
    console.wait_status(failed, "Error")
    console.wait_waiting(restore)

    page.goto(console.url(f"/?bizType={tag}"))
    expect(rows(page)).to_have_count(2)
    waiting = page.locator(f'tr[data-id="{restore}"]')
    expect(waiting.locator("td.status .badge")).to_have_text(["Processing", "Waiting"])
    expect(waiting.locator('td[data-label="Node"]')).to_have_text(
        re.compile(r"^Waiting: approval \(a person or a callback\), for \d[^;]*; deadline in 23 h$")
    )
    # The node whose failure ended the flow, not its fail handler (backupFail) after it.
    node = page.locator(f'tr[data-id="{failed}"] td[data-label="Node"]')
    expect(node).to_have_text("upload (Error)")
    # An open flow's duration is whole, and says it runs on; no figure is cut off.
    expect(waiting.locator('td[data-label="Took"]')).to_have_text(
        re.compile(r"^\d+(\.\d)? (ms|s|min \d+ s) so far$")
    )
    expect(page.locator("#flows-table")).not_to_contain_text("…")
    cut = page.evaluate(
        """() => [...document.querySelectorAll('#flows-table th, #flows-table td')]
            .filter((cell) => cell.scrollWidth > cell.clientWidth + 1)
            .map((cell) => cell.textContent.trim())"""
    )
    assert cut == []
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("(box) => box.scrollWidth - box.clientWidth") <= 1

    # The flows that wait for a person: a filter in the URL like the others.
    page.get_by_label("Waiting", exact=True).select_option(label="for a person or a callback")
    page.get_by_role("button", name="Filter").click()
    expect(rows(page)).to_have_count(1)
    assert rows(page).first.get_attribute("data-id") == restore
    assert "waiting=callback" in page.url
    assert f"bizType={tag}" in page.url
    page.go_back()
    expect(rows(page)).to_have_count(2)
