"""The Activity page in Chromium: after a few actions, a tenant's person sees who did what to
its flows, newest first, filters by an actor with a click, pages back in place, never sees
the other tenant's activity; no serious accessibility violation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.browser.test_quality import serious
from tests.browser.test_security import log_in

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def test_a_person_sees_what_was_done_in_their_tenant(
    page: Any, guarded_console: Console, tag: str
) -> None:
    console = guarded_console
    mine = console.create(bizType=tag, bizId="alice-1", token="token-a")
    stopped = console.create(start=False, bizType=tag, bizId="alice-2", token="token-a")
    reason = {"workFlowId": stopped, "reason": f"not needed ({tag})"}
    assert console.api("POST", "/api/v1/workflow/cancel", reason, "token-a")["code"] == 0
    theirs = console.create(bizType=tag, bizId="bob-1", token="token-b")
    deadline = time.monotonic() + 20
    while console.status(mine, token="token-a") != "Finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    log_in(page, console, "token-a")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Activity").click()
    expect(page).to_have_url(console.url("/activity"))
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    rows = page.locator("#activity-rows tr")
    newest = rows.first
    expect(newest).to_contain_text("reactor:")  # the flow's end, by the reactor
    canceled = page.locator("#activity-rows tr", has_text="FlowCanceled")
    expect(canceled).to_contain_text("token:alice")
    expect(canceled).to_contain_text(f"not needed ({tag})")
    expect(canceled.get_by_role("link", name=stopped[:8])).to_have_attribute(
        "href", f"/flows/{stopped}"
    )
    expect(page.locator("#main")).not_to_contain_text("token:bob")
    assert theirs[:8] not in page.locator("#activity-rows").inner_text()
    expect(page.get_by_label("Tenant")).to_have_count(0)
    assert serious(page) == []
    page.set_viewport_size({"width": 1280, "height": 760})
    page.screenshot(path=str(SHOTS / "activity.png"))

    canceled.get_by_role("link", name="token:alice").click()
    expect(page.get_by_label("Actor")).to_have_value("token:alice")
    expect(page.locator("#activity-rows td[data-label='Actor']").first).to_have_text("token:alice")
    assert set(page.locator("#activity-rows td[data-label='Actor']").all_inner_texts()) == {
        "token:alice"
    }

    for n in range(26):  # more than a page of tenant-a's events
        console.create(start=False, bizType=tag, bizId=f"alice-more-{n}", token="token-a")
    page.goto(console.url("/activity?pageSize=25"))
    expect(rows).to_have_count(25)
    first = rows.count()
    page.locator("#activity-older").click()
    expect(rows).not_to_have_count(first)  # appended in place, no reload
    assert page.url == console.url("/activity?pageSize=25")
    shown = [int(p) for p in rows.evaluate_all("rs => rs.map(r => r.dataset.position)")]
    assert shown == sorted(shown, reverse=True)
    assert len(shown) == len(set(shown))
