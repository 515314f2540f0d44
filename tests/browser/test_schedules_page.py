"""The schedule pages in Chromium: the list with next fires, one schedule's settings, next
fires and history, and pause / resume by the buttons (through the API, with a reason)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console


def test_schedules_are_listed_and_paused_and_resumed_by_the_buttons(
    page: Any, console: Console, tag: str
) -> None:
    schedule_id = f"hourly-{tag}"
    created = console.api("POST", "/api/v1/workflow-schedules", {
        "scheduleId": schedule_id, "flowName": "backup", "cron": "15 * * * *",
        "timezone": "Asia/Kolkata", "description": "an hourly one", "jitterSeconds": 30,
    })  # fmt: skip
    assert created["code"] == 0, created
    page.goto(console.url("/schedules"))
    row = page.locator("table.schedules tbody tr", has_text=schedule_id)
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("15 * * * *")
    expect(row).to_contain_text("Asia/Kolkata")
    # :15 in India (UTC+05:30) is :45 in UTC.
    expect(row.locator("td").nth(3).locator("span.mono")).to_have_count(3)
    expect(row.locator("td").nth(3)).to_contain_text(":45:00 UTC")

    row.get_by_role("link", name=schedule_id).click()
    expect(page.locator("h1")).to_contain_text(schedule_id)
    expect(page.locator("ol.fires li")).to_have_count(10)
    expect(page.locator("ol.fires li").first).to_contain_text("jitter")
    page.locator("#schedule-actions").get_by_role("button", name="Pause").click()
    dialog = page.locator("#action-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason (recorded in the history)").fill("quiet week")
    dialog.locator("#action-confirm").click()
    expect(dialog).to_contain_text("Done")
    dialog.locator("#action-close").click()
    expect(page.locator(".status-line .badge")).to_have_text("Paused")
    expect(page.locator("#history tbody tr").first).to_contain_text("SchedulePaused")
    expect(page.locator("#history tbody tr").first).to_contain_text("quiet week")
    expect(page.locator("main")).to_contain_text("None: the schedule is paused.")

    page.locator("#schedule-actions").get_by_role("button", name="Resume").click()
    dialog.get_by_label("Reason (recorded in the history)").fill("back")
    dialog.locator("#action-confirm").click()
    # As a person would: closed once it says it is done (closed before, under a loaded CI the
    # page's refresh came after the badge's wait had run out).
    expect(dialog).to_contain_text("Done")
    dialog.locator("#action-close").click()
    expect(page.locator(".status-line .badge")).to_have_text("Active")
    detail = console.api("GET", f"/api/v1/workflow-schedules/{schedule_id}")
    assert [e["type"] for e in detail["data"]["events"]] == [
        "ScheduleCreated", "SchedulePaused", "ScheduleResumed",
    ]  # fmt: skip


def test_an_unknown_schedule_is_a_404_page(page: Any, console: Console) -> None:
    answer = page.goto(console.url("/schedules/no-such-schedule"))
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("main")).to_contain_text("schedule no-such-schedule does not exist")
