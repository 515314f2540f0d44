"""The console's security in Chromium: log-in with a token and a tenant's own flows, forged
cross-site requests refused, and hostile text shown as text."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.browser.screenshots import offer, render_spec, take

HOSTILE = [
    "<script>alert('bizId')</script>",
    '"><img src=x onerror=alert(document.domain)>',
    "</textarea><svg onload=alert(1)>",
]


def log_in(page: Any, console: Console, token: str) -> None:
    page.goto(console.url("/"))
    expect(page).to_have_url(console.url("/login?next=%2F"))
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Log in").click()


def test_log_in_shows_only_the_tenants_flows_and_log_out_ends_it(
    page: Any, guarded_console: Console, tag: str
) -> None:
    console = guarded_console
    mine = console.create(start=False, bizType=tag, bizId="alice-1", token="token-a")
    theirs = console.create(start=False, bizType=tag, bizId="bob-1", token="token-b")

    page.goto(console.url("/"))
    page.get_by_label("API key").fill("not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That key is not valid.")

    log_in(page, console, "token-a")
    expect(page).to_have_url(console.url("/"))
    expect(page.locator(".who")).to_contain_text("Signed in as alice, tenant tenant-a")
    page.goto(console.url(f"/?bizType={tag}"))
    expect(page.locator("#flow-rows tr[data-id]")).to_have_count(1)
    expect(page.locator("#flow-rows")).to_contain_text("alice-1")
    expect(page.locator("#flow-rows")).not_to_contain_text("bob-1")
    page.goto(console.url(f"/flows/{theirs}"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")

    # Acting from the console is recorded as the token's, with the reason.
    page.goto(console.url(f"/flows/{mine}"))
    page.locator("#flow-actions").get_by_role("button", name="Cancel").click()
    page.get_by_label("Reason (recorded in the history)").fill("not needed")
    page.locator("#action-dialog").get_by_role("button", name="Cancel").last.click()
    expect(page.locator("#action-result")).to_contain_text("code 0: OK")
    canceled = next(e for e in console.events(mine, "token-a") if e["type"] == "CancelRequested")
    assert (canceled["actor"], canceled["reason"]) == ("token:alice", "not needed")
    assert console.status(theirs, "token-b") == "Initializing"

    page.locator("#action-close").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(console.url("/login"))
    page.goto(console.url(f"/flows/{mine}"))
    expect(page).to_have_url(console.url(f"/login?next=%2Fflows%2F{mine}"))


EVIL_PAGE = """<!doctype html><html><body>
<form id="forged" action="{base}/api/v1/workflow/cancel" method="post" enctype="text/plain">
<input name='{{"workFlowId": "{first}", "reason": "forged", "x": "' value='"}}'></form>
<script>
fetch("{base}/api/v1/workflow/cancel", {{method: "POST", mode: "no-cors", credentials: "include",
  body: new Blob(['{{"workFlowId": "{second}", "reason": "forged"}}'])}})
  .catch(() => null)
  .finally(() => {{ document.title = "sent"; document.getElementById("forged").submit(); }});
</script></body></html>"""


@contextlib.contextmanager
def evil_site(html: str) -> Iterator[int]:
    """Another origin: a page on another port of this host."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def forge(page: Any, console: Console, host: str, token: str | None = None) -> None:
    """A page of another site makes the browser send a form and a no-cors fetch to the
    console's API; neither may change anything."""
    first = console.create(start=False, bizId="target-1", token=token)
    second = console.create(start=False, bizId="target-2", token=token)
    with evil_site(EVIL_PAGE.format(base=console.base, first=first, second=second)) as port:
        page.goto(f"http://{host}:{port}/")
        page.wait_for_url(f"{console.base}/api/v1/workflow/cancel")  # the form was sent
        expect(page.locator("body")).to_contain_text('"code":40122')
    time.sleep(0.5)
    for flow_id in (first, second):
        assert console.status(flow_id, token) == "Initializing"
        assert "CancelRequested" not in [e["type"] for e in console.events(flow_id, token)]


def test_a_forged_request_from_another_site_changes_nothing(page: Any, console: Console) -> None:
    forge(page, console, "127.0.0.1")  # another origin of the same site
    forge(page, console, "localhost")  # another site


def test_a_logged_in_session_cannot_be_ridden_from_another_site(
    page: Any, guarded_console: Console
) -> None:
    log_in(page, guarded_console, "token-a")
    expect(page.locator(".who")).to_contain_text("Signed in as alice")
    # Same site, another port: the SameSite=Strict cookie is sent, the request is refused.
    forge(page, guarded_console, "127.0.0.1", token="token-a")


def test_hostile_text_is_shown_as_text(page: Any, console: Console, tag: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    hostile = {
        "name": f"hostile-{tag}",
        "nodes": {
            "start": {"name": HOSTILE[1], "success": "second",
                      "executor": {"type": "noop"}},
            "second": {"name": HOSTILE[2], "fail": "pause",
                       "executor": {"type": "fail", "message": HOSTILE[0]}},
        },
    }  # fmt: skip
    assert console.api("POST", "/api/v1/workflow-definitions", hostile)["code"] == 0
    context = {HOSTILE[0]: HOSTILE[1], "note": HOSTILE[2]}
    for _ in range(100):  # every process loads REST definitions within 2 s
        answer = console.api(
            "POST", "/api/v1/workflow/",
            {"flowName": hostile["name"], "bizId": HOSTILE[0], "bizType": tag, "start": True,
             "context": context},
        )  # fmt: skip
        if answer["code"] == 0:
            break
        time.sleep(0.1)
    flow_id = answer["data"]["workFlowId"]
    console.wait_status(flow_id, "Stopped")  # the failing node pauses the flow
    assert console.api("POST", "/api/v1/workflow/cancel",
                       {"workFlowId": flow_id, "reason": HOSTILE[1]})["code"] == 0  # fmt: skip

    # A worker's progress is anyone's JSON: on the flow's page and in its refreshes.
    queued = render_spec(f"hostile-render-{tag}", f"q-{tag}")
    assert console.api("POST", "/api/v1/workflow-definitions", queued)["code"] == 0
    task_flow = offer(console, queued["name"], HOSTILE[0])
    take(console, f"q-{tag}", "box-1", {HOSTILE[0]: HOSTILE[1], "note": HOSTILE[2]})

    shown = [
        (f"/flows/{task_flow}", HOSTILE[1]),  # a worker's progress, while its lease lasts
        (f"/?bizType={tag}", HOSTILE[0]),  # the bizId
        (f"/flows/{flow_id}", HOSTILE[2]),  # a node's name, the context
        (f"/flows/{flow_id}?version=1", HOSTILE[1]),  # a context value
        ("/definitions", HOSTILE[1]),
        (f"/definitions/{hostile['name']}", HOSTILE[2]),
    ]
    for path, text in shown:
        page.goto(console.url(path))
        expect(page.locator("main")).to_contain_text(text)
        assert page.locator("img[src='x']").count() == 0, path
        assert page.locator("main svg[onload]").count() == 0, path
        assert page.locator("main script").count() == 0, path
    # Drawn by the scripts too: time travel swaps in fragments.
    page.goto(console.url(f"/flows/{flow_id}"))
    page.get_by_label("Version", exact=True).focus()
    page.keyboard.press("Home")
    expect(page.locator("#at-title")).to_have_text("As it was at version 1")
    expect(page.locator("#panel")).to_contain_text(HOSTILE[1])
    page.keyboard.press("End")
    expect(page.locator("#panel")).to_contain_text(HOSTILE[2])  # a node's name in the graph
    expect(page.locator("#history-rows")).to_contain_text(HOSTILE[1])  # the reason
    assert page.locator("img[src='x']").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []
