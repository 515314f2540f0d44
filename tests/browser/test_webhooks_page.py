"""The Webhooks pages in Chromium: a subscription made by the form (a refused URL said as
such; the secret shown once), its dead letters with the receiver's answer as text, pause by
the dialog and delete from the list. Screenshots go to FLOWLOG_SHOTS (else the test's
temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncpg
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Console, run_async

FLOW_ID = "0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"
ANSWER = "<script>alert('pwned')</script> upstream timed out " + "z" * 600


async def _seed_dead_letter(database_url: str, webhook_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for position, status in ((101, 502), (102, None)):
            await conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, position, stream_id, event_type, "
                "flow_status, state, attempts, last_status, last_answer, dead_at) VALUES "
                "($1, $2, $3, 'FlowFailed', 'Error', 'dead', 12, $4, $5, now())",
                webhook_id, position, "flow-" + FLOW_ID, status, ANSWER,
            )  # fmt: skip
        await conn.execute(
            "INSERT INTO webhook_status (webhook_id, delivered, failed_attempts, dead, "
            "last_status, last_answer, failing) VALUES ($1, 40, 24, 2, 502, $2, true)",
            webhook_id, ANSWER,
        )  # fmt: skip
    finally:
        await conn.close()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, as tests/browser/test_quality.py
    reads them."""
    found = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in found if v["impact"] in {"serious", "critical"}]  # fmt: skip


def test_a_subscription_is_made_watched_paused_and_deleted_in_the_browser(
    page: Any, console: Console, tag: str, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("FLOWLOG_SHOTS", str(tmp_path)))
    shots.mkdir(parents=True, exist_ok=True)
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    url = f"https://hooks.example.com/{tag}"
    page.goto(console.url("/webhooks"))
    expect(page.locator("nav.nav a[aria-current=page]")).to_have_text("Webhooks")
    form = page.locator("#create-form")
    # A private address: refused, said as such, nothing made.
    form.locator("#hook-url").fill("http://10.1.2.3/in")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#create-result")).to_contain_text("Refused (HTTP 400)")
    expect(page.locator("#create-result")).to_contain_text("FLOWLOG_WEBHOOK_ALLOW")
    expect(page.locator("#secret-box")).to_be_hidden()
    form.locator("#hook-url").fill(url)
    form.get_by_label("NodeFailed").check()
    form.get_by_label("Error", exact=True).check()
    form.locator("#hook-description").fill("pager <b>duty</b>")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#create-result")).to_contain_text("Done")
    secret = page.locator("#secret-text")
    expect(secret).to_contain_text("whsec_")
    page.screenshot(path=str(shots / "webhooks-created.png"), full_page=True)
    listed = console.api("GET", "/api/v1/webhooks")["data"]["webhooks"]
    (made,) = [h for h in listed if h["url"] == url]
    assert sorted(made["events"]) == ["FlowFailed", "NodeFailed"]
    assert made["statuses"] == ["Error"]
    shown = secret.text_content()
    # Shown once: not on the page again.
    page.reload()
    expect(page.locator("#secret-box")).to_be_hidden()
    assert shown not in page.content()

    run_async(_seed_dead_letter(console.database_url, made["id"]))
    page.reload()
    row = page.locator("table.webhooks tbody tr", has_text=url)
    expect(row).to_contain_text("failing")
    expect(row).to_contain_text("2 dead letters")
    expect(row).to_contain_text("pager <b>duty</b>")  # as text
    page.screenshot(path=str(shots / "webhooks.png"), full_page=True)

    row.get_by_role("link", name=url).click()
    expect(page.locator("h1")).to_have_text(url)
    dead = page.locator("table.dead tbody tr")
    expect(dead).to_have_count(2)
    # Most recently dead first: 102 (no answer), then 101 (502, its answer as text).
    expect(dead.first).to_contain_text("no answer")
    expect(dead.nth(1)).to_contain_text("<script>alert('pwned')</script>")
    expect(dead.nth(1)).to_contain_text("502")
    expect(dead.nth(1).get_by_role("link")).to_have_attribute("href", f"/flows/{FLOW_ID}")
    expect(page.get_by_role("button", name="Re-send all")).to_be_visible()
    expect(dead.first.get_by_role("button", name="Re-send")).to_be_visible()
    expect(page.locator("#replay-form")).to_be_visible()
    # The replay form asks for one of a position and a time before it sends anything.
    page.locator("#replay-form").get_by_role("button", name="Replay").click()
    expect(page.locator("#webhook-result")).to_contain_text("one of them")
    page.screenshot(path=str(shots / "webhook.png"), full_page=True)
    assert serious_violations(page) == []
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(shots / "phone-webhook.png"), full_page=True)
    page.goto(console.url("/webhooks"))
    assert serious_violations(page) == []
    page.screenshot(path=str(shots / "phone-webhooks.png"), full_page=True)
    page.goto(console.url(f"/webhooks/{made['id']}"))

    page.locator("#webhook-actions").get_by_role("button", name="Pause").click()
    dialog = page.locator("#action-dialog")
    dialog.get_by_label("Reason (recorded in the history)").fill("receiver moving")
    dialog.locator("#action-confirm").click()
    expect(dialog).to_contain_text("Done")
    dialog.locator("#action-close").click()
    expect(page.locator(".status-line .badge").first).to_have_text("paused")

    page.goto(console.url("/webhooks"))
    row = page.locator("table.webhooks tbody tr", has_text=url)
    row.get_by_role("button", name="Delete").click()
    dialog.get_by_label("Reason (recorded in the history)").fill("done with it")
    dialog.locator("#action-confirm").click()
    expect(dialog).to_contain_text("Done")
    dialog.locator("#action-close").click()
    expect(page.locator("table.webhooks tbody tr", has_text=url)).to_have_count(0)
    assert alerts == []
    gone = console.api("GET", f"/api/v1/webhooks/{made['id']}")
    assert gone["code"] == 40143
