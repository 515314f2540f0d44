"""Who may see and do what through the console: log-in with a token (a session cookie), the
tenant's flows only, CSRF tokens on a session's writes, cross-site requests refused, log-out,
and the security headers of every answer."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from aiohttp import ClientResponse

from flowlog.access import sessions
from flowlog.access.identity import Identity
from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.access import SESSION_COOKIE
from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import FLOWS, A, B, Client, create, events, ok, refused, status_of


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def log_in(client: Client, token: str, target: str = "/") -> ClientResponse:
    return await client.post("/login", data={"token": token, "next": target}, allow_redirects=False)


async def session_of(client: Client, token: str = "token-a") -> dict[str, str]:
    """Logs in; the Cookie header of the session (the client's own jar is left empty)."""
    answer = await log_in(client, token)
    assert answer.status == 303
    cookie = answer.cookies[SESSION_COOKIE]
    client.session.cookie_jar.clear()
    return {"Cookie": f"{SESSION_COOKIE}={cookie.value}"}


async def csrf_of(client: Client, cookie: dict[str, str]) -> str:
    page = await (await client.get("/", headers=cookie)).text()
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found is not None
    return found.group(1)


async def test_pages_ask_for_a_log_in_and_a_token_opens_a_session(guarded: Service) -> None:
    client = guarded.client
    for path in ("/", "/flows/x?version=2", "/definitions"):
        answer = await client.get(path, allow_redirects=False)
        assert answer.status == 303, path
        assert answer.headers["Location"].startswith("/login?next=%2F")
    form = await client.get("/login")
    assert form.status == 200
    assert 'type="password"' in await form.text()

    refused_login = await log_in(client, "token-wrong")
    assert refused_login.status == 401
    assert "That key is not valid." in await refused_login.text()
    assert SESSION_COOKIE not in refused_login.cookies

    answer = await log_in(client, "token-a", "/definitions")
    assert answer.status == 303
    assert answer.headers["Location"] == "/definitions"
    set_cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    assert "Path=/" in set_cookie
    assert "token-a" not in set_cookie  # the cookie is signed by the token, never holds it


async def test_a_session_sees_only_its_tenant(guarded: Service) -> None:
    client = guarded.client
    mine = await create(client, "backup", start=False, biz_id="alice-flow", headers=A)
    theirs = await create(client, "backup", start=False, biz_id="bob-flow", headers=B)
    cookie = await session_of(client)
    page = await (await client.get("/", headers=cookie)).text()
    assert "Signed in as <strong>alice</strong>" in page
    assert "alice-flow" in page
    assert "bob-flow" not in page
    assert (await client.get(f"/flows/{theirs}", headers=cookie)).status == 404
    assert (await client.get(f"/flows/{mine}", headers=cookie)).status == 200
    listed = await ok(await client.get(FLOWS, headers=cookie), paged=True)
    assert [f["id"] for f in listed["data"]["workFlows"]] == [mine]
    assert (await client.get(f"/console/flows/{theirs}", headers=cookie)).status == 404
    assert (
        await client.get(f"/go?id={theirs}", headers=cookie, allow_redirects=False)
    ).status == 404


async def test_a_sessions_writes_need_its_csrf_token(guarded: Service) -> None:
    client = guarded.client
    flow_id = await create(client, "backup", start=False, headers=A)
    cookie = await session_of(client)
    body = {"workFlowId": flow_id, "reason": "from the console"}
    for headers in (cookie, {**cookie, "X-CSRF-Token": "forged"}):
        answer = await client.post(FLOWS + "cancel", json=body, headers=headers)
        refusal = await refused(answer, 403, Code.FORBIDDEN)
        assert "X-CSRF-Token" in refusal["message"]
    assert await status_of(client, flow_id, A) == "Initializing"
    # Another session of the same token has another CSRF token.
    other_session = await session_of(client)
    stale = {**cookie, "X-CSRF-Token": await csrf_of(client, other_session)}
    await refused(await client.post(FLOWS + "cancel", json=body, headers=stale), 403, 40122)

    token = await csrf_of(client, cookie)
    done = await client.post(FLOWS + "cancel", json=body, headers={**cookie, "X-CSRF-Token": token})
    await ok(done)
    canceled = [e for e in await events(client, flow_id, A) if e["type"] == "FlowCanceled"]
    assert canceled[0]["actor"] == "token:alice"  # as over REST with the token
    assert canceled[0]["reason"] == "from the console"


async def test_forged_expired_and_revoked_sessions_are_nobody(
    guarded: Service, make_service: MakeService
) -> None:
    client = guarded.client
    ring = guarded.app[keys.ACCESS]
    alice = ring.identify("token-a")
    assert alice is not None
    expired = ring.open_session(alice, now=time.time() - 13 * 3600)
    cookie = await session_of(client)
    value = cookie["Cookie"].split("=", 1)[1]
    payload, _, signature = value.partition(".")
    # A session of another installation (another secret), and one naming a token nobody has.
    bob_here = ring.identify("token-b")
    assert bob_here is not None
    binding = ring.tokens.fingerprint("bob") or ""
    bob = sessions.seal(b"another installation's secret", bob_here, binding, 2**40)
    stranger = ring.open_session(Identity("token", "mallory", "tenant-a", Role.ADMIN))
    forged = [
        expired[0],
        bob[0],  # signed by another installation
        stranger[0],  # signed here, for a token this server does not have
        f"{bob[0].partition('.')[0]}.{signature}",  # bob's name under alice's signature
        f"{payload}.{signature[:-2]}xx",
        "garbage",
        f"{payload}",
    ]
    for value in forged:
        headers = {"Cookie": f"{SESSION_COOKIE}={value}"}
        await refused(await client.get(FLOWS, headers=headers), 401, Code.UNAUTHORIZED)
        assert (await client.get("/", headers=headers, allow_redirects=False)).status == 303
    # The token was rotated: its sessions end everywhere.
    rotated = await make_service(tokens="alice:token-a2:tenant-a")
    await refused(await rotated.client.get(FLOWS, headers=cookie), 401, Code.UNAUTHORIZED)


async def test_log_out_needs_the_form_of_the_session(guarded: Service) -> None:
    client = guarded.client
    cookie = await session_of(client)
    forged = await client.post(
        "/logout", data={"csrf_token": "x"}, headers=cookie, allow_redirects=False
    )
    assert forged.status == 403
    assert SESSION_COOKIE not in forged.cookies
    token = await csrf_of(client, cookie)
    answer = await client.post(
        "/logout", data={"csrf_token": token}, headers=cookie, allow_redirects=False
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/login"
    assert answer.cookies[SESSION_COOKIE].value == ""
    assert answer.cookies[SESSION_COOKIE]["max-age"] == "0"


FOREIGN_TARGETS = [
    "//evil.example/x", "https://evil.example/", "/\\evil.example", "flows", "",
    "/\t/evil.example", "/%09/evil.example", "/%2F/evil.example", "/%2f/evil.example",
    "/%5C/evil.example", "/ /evil.example", "/\r\nSet-Cookie: x=1", "/a\nb", "/a\x0bb",
    "/a\x00b", "/%0d%0aSet-Cookie:%20x=1", "/\u2028/evil.example", "/\x7f",
]  # fmt: skip


@pytest.mark.parametrize("target", FOREIGN_TARGETS)
async def test_after_log_in_only_a_local_page(guarded: Service, target: str) -> None:
    answer = await log_in(guarded.client, "token-a", target)
    assert answer.status == 303  # answered, never a dropped connection
    assert answer.headers["Location"] == "/"
    # The log-in form carries "/" on too, never the target.
    form = await guarded.client.get("/login", params={"next": target})
    assert form.status == 200
    assert 'name="next" value="/"' in await form.text()


@pytest.mark.parametrize("target", ["/", "/flows/abc?version=3", "/definitions#top", "/a%20b"])
async def test_after_log_in_a_local_page_is_kept(guarded: Service, target: str) -> None:
    answer = await log_in(guarded.client, "token-a", target)
    assert answer.headers["Location"] == target


CROSS_SITE: list[dict[str, str]] = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port of the same host is another origin
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_a_cross_site_request_changes_nothing(
    service: Service, headers: dict[str, str]
) -> None:
    """Open access (no tokens): a browser's cross-site request is still refused."""
    client = service.client
    flow_id = await create(client, "backup", start=False)
    body = {"workFlowId": flow_id, "reason": "forged"}
    answer = await client.post(FLOWS + "cancel", json=body, headers=headers)
    await refused(answer, 403, Code.FORBIDDEN)
    form = await client.post("/logout", data={}, headers=headers, allow_redirects=False)
    assert form.status == 403
    assert await status_of(client, flow_id) == "Initializing"


async def test_same_origin_browsers_and_programs_may_act(service: Service) -> None:
    client = service.client
    host = f"{client.host}:{client.port}"
    allowed: list[dict[str, Any]] = [
        {},  # curl, a script: nothing to forge
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": f"http://{host}"},
    ]
    for headers in allowed:
        flow_id = await create(client, "backup", start=False)
        body = {"workFlowId": flow_id, "reason": "ok"}
        await ok(await client.post(FLOWS + "cancel", json=body, headers=headers))


async def test_a_bearer_token_is_no_forgery(guarded: Service) -> None:
    flow_id = await create(guarded.client, "backup", start=False, headers=A)
    headers = {**A, "Sec-Fetch-Site": "cross-site"}
    body = {"workFlowId": flow_id}
    await ok(await guarded.client.post(FLOWS + "cancel", json=body, headers=headers))


async def test_log_in_from_another_site_is_refused(guarded: Service) -> None:
    answer = await guarded.client.post(
        "/login", data={"token": "token-a", "next": "/"}, headers={"Origin": "http://evil.example"},
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status == 403
    assert SESSION_COOKIE not in answer.cookies


async def test_every_answer_carries_the_security_headers(client: Client) -> None:
    for path in ("/", "/definitions", FLOWS, "/api/v1/docs", "/nowhere", "/login"):
        answer = await client.get(path)
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        assert headers["X-Frame-Options"] == "DENY", path
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "http" not in policy  # no other host


async def test_behind_a_tls_proxy_the_session_cookie_is_secure(make_service: MakeService) -> None:
    """TLS ends at the proxy (FLOWLOG_PUBLIC_URL says https): the cookie must still never
    travel over plain HTTP."""
    service = await make_service(
        tokens=TOKENS, env={"FLOWLOG_PUBLIC_URL": "https://flowlog.example.com"}
    )
    answer = await log_in(service.client, "token-a")
    assert answer.status == 303
    [cookie] = [h for h in answer.headers.getall("Set-Cookie") if h.startswith(SESSION_COOKIE)]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
