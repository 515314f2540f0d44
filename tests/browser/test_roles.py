"""A viewer's console, in a real browser: who is signed in and with which role, and no action
offered (absent, not broken: the pages' scripts run without a control to find)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.browser.test_security import log_in


def test_a_viewer_watches_and_is_offered_nothing_to_do(
    page: Any, guarded_console: Console, tag: str, tmp_path: Path
) -> None:
    console = guarded_console
    made = console.api("POST", "/api/v1/keys", {"name": f"viewer-{tag}", "role": "viewer"},
                       token="token-a")  # fmt: skip
    assert made["code"] == 0, made
    flow_id = console.create(start=False, bizType=tag, bizId="watched", token="token-a")

    log_in(page, console, made["data"]["key"])
    expect(page.locator(".who")).to_contain_text(f"Signed in as viewer-{tag}, tenant tenant-a")
    expect(page.locator(".who .role")).to_have_text("viewer")
    expect(page.get_by_role("link", name=flow_id[:8])).to_be_visible()
    expect(page.locator("#select-page")).to_have_count(0)
    expect(page.locator("input.pick")).to_have_count(0)
    expect(page.locator("#bulk")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "viewer-flows.png"))  # looked at when it changes

    page.get_by_role("link", name=flow_id[:8]).click()
    expect(page.get_by_text("may watch this flow, not act on it")).to_be_visible()
    expect(page.locator("[data-action]")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "viewer-flow.png"))

    # The same flow to its tenant's admin: the actions are there.
    page.context.clear_cookies()
    log_in(page, console, "token-a")
    page.goto(console.url(f"/flows/{flow_id}"))
    expect(page.locator('[data-action="start"]')).to_be_visible()
    expect(page.locator(".who .role")).to_have_text("admin")
