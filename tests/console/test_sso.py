"""The console's single sign-on against a real identity provider over HTTP (this repository's
TestProvider, which can forge its answers): the log-in that lands on the console with the mapped
role, and each refusal (counted, recorded, no session), the pending sign-in's cookie, and the
routes' absence without an issuer."""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import pytest
from aiohttp import ClientResponse

from flowlog.access.events import refusals_stream
from flowlog.access.sessions import b64
from flowlog.api.access import SESSION_COOKIE
from flowlog.console.oidc import PENDING_COOKIE
from tests.access.oidc_provider import CLIENT_ID, CLIENT_SECRET, TestProvider, authorize
from tests.api.conftest import MakeService, Service

MAP = "flowlog-viewers=acme:viewer,flowlog-admins=acme:admin,flowlog-root=*:superadmin"
LOGIN_REFUSALS = refusals_stream("", "login:127.0.0.1")


def sso_env(issuer: str, **more: str) -> dict[str, str]:
    return {"FLOWLOG_OIDC_ISSUER": issuer, "FLOWLOG_OIDC_CLIENT_ID": CLIENT_ID,
            "FLOWLOG_OIDC_CLIENT_SECRET": CLIENT_SECRET, "FLOWLOG_OIDC_MAP": MAP,
            **more}  # fmt: skip


@pytest.fixture
async def sso(make_service: MakeService, oidc_provider: TestProvider) -> Service:
    return await make_service(env=sso_env(oidc_provider.issuer))


async def begin(service: Service, target: str = "/") -> tuple[str, str]:
    """``GET /login/oidc``: the provider's authorization URL, and the pending cookie (also in
    the client's jar)."""
    answer = await service.client.get("/login/oidc", params={"next": target},
                                      allow_redirects=False)  # fmt: skip
    assert answer.status == 303, await answer.text()
    return answer.headers["Location"], answer.cookies[PENDING_COOKIE].value


async def callback_path(url: str) -> str:
    """What the browser does at the provider: the callback's path and query it is sent to."""
    code, state = await authorize(url)
    return "/login/oidc/callback?" + urlencode({"code": code, "state": state})


async def callback(service: Service, path: str, pending: str | None = None) -> ClientResponse:
    service.client.session.cookie_jar.clear()
    cookies = {PENDING_COOKIE: pending} if pending is not None else None
    return await service.client.get(path, cookies=cookies, allow_redirects=False)


async def sign_in(service: Service, target: str = "/") -> ClientResponse:
    url, pending = await begin(service, target)
    return await callback(service, await callback_path(url), pending)


async def landed(answer: ClientResponse, target: str) -> str:
    """The session cookie of a sign-in that ends on the page going on to ``target`` (not a
    redirect: see flowlog.console.oidc._landing), the pending sign-in cleared."""
    page = await answer.text()
    assert answer.status == 200, page
    assert f'<meta http-equiv="refresh" content="0; url={target}">' in page
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.cookies[PENDING_COOKIE].value == ""
    assert any(
        header.startswith(SESSION_COOKIE) and "SameSite=Strict" in header
        for header in answer.headers.getall("Set-Cookie")
    )
    session: str = answer.cookies[SESSION_COOKIE].value
    assert session
    return session


async def login_refusals(service: Service) -> list[dict[str, Any]]:
    rows = await service.engine.pool.fetch(
        "SELECT data FROM events WHERE stream_id = $1 AND type = 'LoginRefused' ORDER BY version",
        LOGIN_REFUSALS,
    )
    return [dict(row["data"]) for row in rows]


async def refused_with(service: Service, answer: ClientResponse, words: str) -> None:
    """A refusal: 401, the log-in page saying ``words``, no session, the pending sign-in
    cleared, one LoginRefused more in the log (of method oidc)."""
    page = await answer.text()
    assert answer.status == 401, page
    assert words in page
    assert "Traceback" not in page
    assert "eyJ" not in page
    assert SESSION_COOKIE not in answer.cookies
    assert answer.cookies[PENDING_COOKIE].value == ""  # deleted
    refusals = await login_refusals(service)
    assert refusals
    assert refusals[-1]["method"] == "oidc"
    assert refusals[-1]["address"] == "127.0.0.1"


# -- the log-in ----------------------------------------------------------------------------------


async def test_the_log_in_page_offers_single_sign_on(sso: Service) -> None:
    answer = await sso.client.get("/", allow_redirects=False)
    assert answer.status == 303
    assert answer.headers["Location"] == "/login?next=%2F"
    page = await (await sso.client.get("/login?next=/definitions")).text()
    assert 'href="/login/oidc?next=/definitions"' in page
    assert "Log in with your organisation's account" in page


async def test_single_sign_on_lands_on_the_console_with_the_mapped_role(
    sso: Service, oidc_provider: TestProvider
) -> None:
    url, pending = await begin(sso, "/definitions")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == oidc_provider.issuer
    query = parse_qs(parts.query)
    assert query["redirect_uri"] == [
        f"http://127.0.0.1:{sso.client.port}/login/oidc/callback"  # no FLOWLOG_PUBLIC_URL
    ]
    started = [h for h in (await sso.client.get("/login/oidc", allow_redirects=False))
               .headers.getall("Set-Cookie") if h.startswith(PENDING_COOKIE)]  # fmt: skip
    assert len(started) == 1
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/login/oidc", "Max-Age=600"):
        assert attribute in started[0]
    assert "Secure" not in started[0]  # plain http here

    answer = await callback(sso, await callback_path(url), pending)
    session = await landed(answer, "/definitions")

    cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
    page = await (await sso.client.get("/", headers=cookie)).text()
    assert "Signed in as <strong>alice</strong>, tenant <strong>acme</strong>" in page
    assert '<span class="role" data-role="admin">admin</span>' in page
    assert await login_refusals(sso) == []
    # What the person does is the log's under their subject, which they cannot change.
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert csrf is not None
    made = await sso.client.post(
        "/api/v1/keys", json={"name": "from-sso", "role": "viewer"},
        headers={**cookie, "X-CSRF-Token": csrf.group(1)},
    )  # fmt: skip
    assert made.status == 200, await made.text()
    assert (await made.json())["data"]["createdBy"] == "oidc:user-alice"


async def test_a_superadmin_sees_every_tenant(sso: Service, oidc_provider: TestProvider) -> None:
    oidc_provider.next_login({"sub": "u-root", "preferred_username": "root",
                              "groups": ["flowlog-viewers", "flowlog-root"]})  # fmt: skip
    cookie = {"Cookie": f"{SESSION_COOKIE}={await landed(await sign_in(sso), '/')}"}
    page = await (await sso.client.get("/", headers=cookie)).text()
    assert "All tenants" in page
    assert 'data-role="superadmin"' in page


async def test_the_next_page_stays_on_this_site(sso: Service) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/a" * 1500):
        await landed(await sign_in(sso, target), "/")


async def test_the_redirect_uri_is_the_public_urls_when_set(
    make_service: MakeService, oidc_provider: TestProvider
) -> None:
    env = sso_env(oidc_provider.issuer, FLOWLOG_PUBLIC_URL="https://flowlog.example.com/")
    service = await make_service(env=env)
    answer = await service.client.get("/login/oidc", allow_redirects=False)
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["redirect_uri"] == [
        "https://flowlog.example.com/login/oidc/callback"
    ]
    assert "Secure" in answer.headers["Set-Cookie"]  # the public URL is https


# -- refusals ------------------------------------------------------------------------------------


async def test_tokens_of_another_issuer_are_refused(
    sso: Service, oidc_provider: TestProvider
) -> None:
    oidc_provider.next_login(token={"iss": "http://127.0.0.1:1"})
    await refused_with(sso, await sign_in(sso), "issued by another issuer")


async def test_an_expired_id_token_is_refused(sso: Service, oidc_provider: TestProvider) -> None:
    now = int(time.time())
    oidc_provider.next_login(token={"iat": now - 7200, "exp": now - 3600})
    await refused_with(sso, await sign_in(sso), "The ID token has expired.")


async def test_an_id_token_without_the_claim_is_refused(
    sso: Service, oidc_provider: TestProvider
) -> None:
    oidc_provider.next_login({"sub": "u-carol", "preferred_username": "carol"})
    await refused_with(sso, await sign_in(sso), "has no &#39;groups&#39; claim")
    oidc_provider.next_login({"sub": "u-carol", "groups": ["other-team"]})
    await refused_with(sso, await sign_in(sso), "gives access to this service")


async def test_a_replayed_callback_is_refused_with_and_without_its_cookie(sso: Service) -> None:
    url, pending = await begin(sso)
    path = await callback_path(url)
    await landed(await callback(sso, path, pending), "/")
    # Its cookie cleared: the browser's replay finds no sign-in to finish.
    await refused_with(sso, await callback(sso, path), "was not started here")
    # The cookie kept and sent again: the provider refuses the code it gave already.
    await refused_with(sso, await callback(sso, path, pending), "used already")


async def test_a_forged_or_tampered_pending_cookie_is_refused(
    sso: Service, oidc_provider: TestProvider
) -> None:
    url, pending = await begin(sso, "/definitions")
    path = await callback_path(url)
    payload, _, signature = pending.partition(".")
    kept = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    kept["next"] = "/queues"
    tampered = f"{b64(orjson.dumps(kept))}.{signature}"
    forged = f"{payload}.{b64(b'x' * 32)}"
    for cookie in (tampered, forged, payload, "", "a.b.c", "%00" * 10, "x" * 5000):
        await refused_with(sso, await callback(sso, path, cookie), "was not started here")
    # A pending sign-in of another sign-in (its state differs), sealed by this service.
    _other_url, other = await begin(sso)
    await refused_with(sso, await callback(sso, path, other), "does not match")
    assert oidc_provider.token_requests == 0  # no code went anywhere


async def test_a_declined_sign_in_is_refused(sso: Service) -> None:
    _, pending = await begin(sso)
    answer = await callback(sso, "/login/oidc/callback?error=access_denied&state=x", pending)
    await refused_with(sso, answer, "did not sign you in (access_denied).")
    odd = "/login/oidc/callback?error=%3Cscript%3Ealert(1)%3C/script%3E"
    page = await (await callback(sso, odd, pending)).text()
    assert "did not sign you in." in page
    assert "<script>alert" not in page


async def test_a_callback_with_two_codes_is_refused(sso: Service) -> None:
    url, pending = await begin(sso)
    path = await callback_path(url)
    await refused_with(sso, await callback(sso, path + "&code=other", pending), "no usable")


async def test_the_eleventh_failure_in_a_minute_waits(sso: Service) -> None:
    for _ in range(10):
        answer = await callback(sso, "/login/oidc/callback?code=c&state=s")
        assert answer.status == 401
    limited = await callback(sso, "/login/oidc/callback?code=c&state=s")
    assert limited.status == 429
    assert "Too many failed log-ins" in await limited.text()
    assert int(limited.headers["Retry-After"]) > 0
    begun = await sso.client.get("/login/oidc", allow_redirects=False)
    assert begun.status == 429
    # Each failure counted; the log takes one a second, the others folded into the next one.
    recorded = await login_refusals(sso)
    assert 1 <= len(recorded) <= 10
    assert recorded[0]["repeats"] == 0
    metrics = await (await sso.client.get("/metrics")).text()
    assert 'flowlog_console_logins_total{method="oidc",outcome="refused"} 10.0' in metrics
    assert 'flowlog_console_logins_total{method="oidc",outcome="limited"} 2.0' in metrics


# -- the provider and the settings ---------------------------------------------------------------


async def test_the_server_starts_while_the_provider_is_down_and_discovers_later(
    sso: Service, oidc_provider: TestProvider
) -> None:
    oidc_provider.discovery_issuer = "http://127.0.0.1:1"  # discovery fails
    answer = await sso.client.get("/login/oidc", allow_redirects=False)
    assert answer.status == 503
    assert "names another issuer" in await answer.text()
    assert PENDING_COOKIE not in answer.cookies
    oidc_provider.discovery_issuer = None
    await landed(await sign_in(sso), "/")
    assert await login_refusals(sso) == []  # the provider's trouble is not the person's


async def test_an_unreachable_provider_does_not_stop_the_server(
    make_service: MakeService,
) -> None:
    service = await make_service(env=sso_env("http://127.0.0.1:1"))
    assert (await service.client.get("/healthz")).status == 200
    answer = await service.client.get("/login/oidc", allow_redirects=False)
    assert answer.status == 503
    assert "could not be reached" in await answer.text()


async def test_without_an_issuer_the_routes_are_not_found(make_service: MakeService) -> None:
    service = await make_service(tokens="alice:token-a:acme")
    for path in ("/login/oidc", "/login/oidc/callback?code=c&state=s"):
        answer = await service.client.get(path, allow_redirects=False)
        assert answer.status == 404, path
        assert "no single sign-on" in await answer.text()
    page = await (await service.client.get("/login")).text()
    assert "/login/oidc" not in page
    open_service = await make_service()
    assert (await open_service.client.get("/login/oidc")).status == 404
