"""OpenID providers for the sign-on tests, each on 127.0.0.1 at a free port, in a thread of its
own (so that asynchronous tests and Playwright's synchronous ones can both use them).

- ``oidc_provider``: ``TestProvider``, this file's own (aiohttp, tokens signed with joserfc):
  discovery, JWKS, an authorization endpoint that consents at once (it redirects straight back
  with a code, so a browser needs no click), a token endpoint with single-use codes, PKCE S256
  and client authentication. ``next_login`` chooses the claims of the log-ins that follow and
  can forge their ID tokens (another issuer, audience or nonce, expired, a bad signature...).
- ``oidc_mock``: ``MockProvider``, the package oidc-provider-mock (Flask on Authlib's server
  side), an implementation other than this repository's own: its authorization page is a form
  where one types a subject; ``set_user`` chooses that subject's claims.

Both have the client ``CLIENT_ID``/``CLIENT_SECRET`` (the mock accepts any client).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

CLIENT_ID = "flowlog-test"
CLIENT_SECRET = "a-test-secret-long-enough-for-hs256-keys"
REDIRECT_URI = "http://127.0.0.1:9/login/oidc/callback"
DEFAULT_CLAIMS: dict[str, Any] = {
    "sub": "user-alice",
    "preferred_username": "alice",
    "email": "alice@example.com",
    "groups": ["flowlog-admins"],
}
# How an ID token is signed: "good", "other-key" (another key under the published kid),
# "unpublished" (a key and kid the JWKS does not hold), "hs256" (HMAC with the client secret),
# "none" (no signature), "tampered" (claims changed after signing).
SIGNINGS = ("good", "other-key", "unpublished", "hs256", "none", "tampered")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig"})


@dataclass
class Login:
    """What the next log-ins get: the user's claims, overrides of the ID token's own claims
    (``iss``, ``aud``, ``exp``, ``nonce``, ``azp``...; None removes one), and the signing."""

    claims: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_CLAIMS))
    token: dict[str, Any] = field(default_factory=dict)
    signing: str = "good"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str
    login: Login


class TestProvider:
    """This file's provider; ``issuer`` is its URL. Set ``discovery_issuer`` to make discovery
    name another issuer, ``auth_methods`` to change the client authentication it offers,
    ``discovery_changes`` to change any field of the discovery document."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self.issuer = ""
        self.discovery_issuer: str | None = None
        self.auth_methods = ["client_secret_basic", "client_secret_post"]
        self.discovery_changes: dict[str, Any] = {}  # merged over the discovery document
        self.login = Login()
        self.key = _new_key()
        self.token_requests = 0
        self._codes: dict[str, _Grant] = {}

    def next_login(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        token: Mapping[str, Any] | None = None,
        signing: str = "good",
    ) -> None:
        """The claims of the log-ins from now on (``DEFAULT_CLAIMS`` when None), with their
        ID tokens' claims overridden by ``token`` and signed as ``signing`` (SIGNINGS)."""
        assert signing in SIGNINGS, signing
        self.login = Login(dict(DEFAULT_CLAIMS if claims is None else claims),
                           dict(token or {}), signing)  # fmt: skip

    def rotate_key(self) -> None:
        """A new signing key; the JWKS publishes it alone from now on."""
        self.key = _new_key()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": self.auth_methods,
        } | self.discovery_changes)  # fmt: skip

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID or not redirect_uri.startswith("http"):
            return web.json_response({"error": "invalid_client"}, status=400)
        if (
            query.get("response_type") != "code"
            or "openid" not in query.get("scope", "").split()
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(CLIENT_ID, redirect_uri, query.get("nonce"),
                                   query["code_challenge"], self.login)  # fmt: skip
        back = urlencode({"code": code, "state": query.get("state", "")})
        raise web.HTTPFound(f"{redirect_uri}?{back}")

    def _client(self, request: web.Request, form: Mapping[str, str]) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic ") and "client_secret_basic" in self.auth_methods:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        elif "client_secret" in form and "client_secret_post" in self.auth_methods:
            client_id, secret = form.get("client_id", ""), form["client_secret"]
        else:
            return None
        return client_id if (client_id, secret) == (CLIENT_ID, CLIENT_SECRET) else None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = {key: str(value) for key, value in (await request.post()).items()}
        client_id = self._client(request, form)
        if client_id is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
        verifier = form.get("code_verifier", "")
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.client_id != client_id
            or grant.redirect_uri != form.get("redirect_uri")
            or _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        id_token = self._id_token(grant)
        return web.json_response({"access_token": secrets.token_urlsafe(24),
                                  "token_type": "Bearer", "expires_in": 300,
                                  "id_token": id_token})  # fmt: skip

    def _id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            **grant.login.claims,
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in grant.login.token.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return sign(claims, self.key, grant.login.signing)


def sign(claims: Mapping[str, Any], key: RSAKey, signing: str = "good") -> str:
    """An ID token of ``claims`` signed with ``key`` as ``signing`` (SIGNINGS) says."""
    header = {"alg": "RS256", "kid": key.kid}
    if signing == "other-key":
        return jwt.encode(header, dict(claims), _new_key())
    if signing == "unpublished":
        other = _new_key()
        return jwt.encode({"alg": "RS256", "kid": other.kid}, dict(claims), other)
    if signing == "hs256":
        secret = OctKey.import_key(CLIENT_SECRET.encode())
        return jwt.encode({"alg": "HS256"}, dict(claims), secret, algorithms=["HS256"])
    if signing == "none":
        unsigned = _b64(orjson.dumps({"alg": "none"}))
        return f"{unsigned}.{_b64(orjson.dumps(dict(claims)))}."
    token = jwt.encode(header, dict(claims), key)
    if signing == "tampered":
        head, _, signature = token.split(".")
        forged = {**claims, "groups": ["flowlog-superadmins"]}
        return f"{head}.{_b64(orjson.dumps(forged))}.{signature}"
    return token


class _LoopThread:
    """An aiohttp application served on 127.0.0.1 at a free port by a loop in its own thread."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app)
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def oidc_provider() -> Iterator[TestProvider]:
    """``TestProvider`` running; its ``issuer`` is ``http://127.0.0.1:<port>``."""
    provider = TestProvider()
    server = _LoopThread(provider.app())
    provider.issuer = f"http://127.0.0.1:{server.port}"
    try:
        yield provider
    finally:
        server.stop()


@dataclass
class MockProvider:
    """oidc-provider-mock running at ``issuer``."""

    issuer: str

    def set_user(self, sub: str, claims: Mapping[str, Any]) -> None:
        """The claims of ``sub`` (typed into the authorization form) from now on."""
        import urllib.request

        request = urllib.request.Request(
            f"{self.issuer}/users/{sub}", data=orjson.dumps(dict(claims)), method="PUT",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204


# The mock runs in a process of its own: it calls Authlib's deprecated APIs, whose warnings the
# tests' filter (error) would turn into failed requests in a thread of this process.
_MOCK = """
import sys, werkzeug.serving, oidc_provider_mock
server = werkzeug.serving.make_server(
    "127.0.0.1", 0, oidc_provider_mock.app(require_nonce=True), threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def oidc_mock() -> Iterator[MockProvider]:
    """oidc-provider-mock on 127.0.0.1 at a free port, any client id and secret accepted."""
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", _MOCK],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield MockProvider(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


async def authorize(url: str, *, sub: str | None = None) -> tuple[str, str]:
    """What a browser does between ``begin`` and the callback: it opens the authorization URL
    and, on a form (oidc-provider-mock's), submits it as ``sub``; the provider's redirect to
    the callback is not followed (nothing listens there): its code and state are answered."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False) as response:
            location = response.headers.get("Location")
            if response.status == 200:
                assert sub is not None, "the provider shows a form: say whom to log in as"
                async with session.post(url, data={"sub": sub}, allow_redirects=False) as posted:
                    assert posted.status == 302, await posted.text()
                    location = posted.headers["Location"]
        assert location is not None, f"no redirect from the provider ({response.status})"
        query = parse_qs(urlsplit(location).query)
        assert "error" not in query, query
        return query["code"][0], query["state"][0]
