"""Who is asking, and whether a browser may do what it asks.

Two ways to authenticate, one owner (a token's name and tenant):

- ``Authorization: Bearer <token>``, for programs;
- the console's session cookie, for people: set at log-in from a token, HttpOnly and
  SameSite=Strict, signed with that token (rotating a token ends its sessions, and any process
  that knows the token can check the cookie: there is no session store to share).

A browser sends cookies by itself, so a request that is not authenticated by a bearer token
is checked for cross-site forgery before it may change anything: a cross-origin request
(``Sec-Fetch-Site``, or ``Origin`` against ``Host`` from older browsers) is refused, and one
that rides on a session must carry the session's CSRF token (``X-CSRF-Token``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
from aiohttp import hdrs, web

SESSION_COOKIE = "flowlog_session"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Owner:
    """The holder of a token: its name (the actor in the log) and its tenant."""

    name: str
    tenant: str

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


@dataclass(frozen=True, slots=True)
class Session:
    """A console log-in: whose, until when, and the secret its CSRF token derives from."""

    owner: Owner
    expires: int
    nonce: str
    token: str = field(repr=False)

    @property
    def csrf_token(self) -> str:
        return _mac(self.token, f"csrf.{self.nonce}".encode())

    def accepts_csrf(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(
            (presented or "").encode(), self.csrf_token.encode()
        )


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens, each bound to a tenant (and named, for the audit trail)."""

    by_token: Mapping[str, Owner] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.by_token)

    @classmethod
    def parse(cls, text: str) -> Tokens:
        """``name:token:tenant`` entries separated by commas."""
        tokens: dict[str, Owner] = {}
        for entry in filter(None, (part.strip() for part in text.split(","))):
            name, sep, rest = entry.partition(":")
            token, sep2, tenant = rest.partition(":")
            if not (sep and sep2 and name and token and tenant):
                raise ValueError(f"a token is name:token:tenant, not {entry!r}")
            tokens[token] = Owner(name, tenant)
        return cls(tokens)

    def resolve(self, header: str | None) -> Owner | None:
        """The owner of an ``Authorization: Bearer`` header's token, if it is one of ours."""
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():  # the scheme is case-blind
            return None
        return self.owner_of(credentials.strip())

    def owner_of(self, presented: str) -> Owner | None:
        found = None
        for token, owner in self.by_token.items():  # compare with every token, in constant time
            if hmac.compare_digest(presented.encode(), token.encode()):
                found = owner
        return found

    # -- console sessions --------------------------------------------------------------------

    def open_session(self, presented: str, now: float | None = None) -> tuple[str, Session] | None:
        """A new session for the holder of ``presented``: (cookie value, session)."""
        owner = self.owner_of(presented.strip())
        if owner is None:
            return None
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        nonce = secrets.token_urlsafe(16)
        payload = _b64(orjson.dumps([owner.name, expires, nonce]))
        cookie = f"{payload}.{_mac(presented.strip(), payload.encode())}"
        return cookie, Session(owner, expires, nonce, presented.strip())

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie stands for, if one of today's tokens signed it and it is
        not past its time."""
        if not cookie or not self.enabled:
            return None
        payload, _, signature = cookie.partition(".")
        try:
            name, expires, nonce = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            return None
        if not (isinstance(name, str) and isinstance(expires, int) and isinstance(nonce, str)):
            return None
        if expires < (time.time() if now is None else now):
            return None
        found = None
        for token, owner in self.by_token.items():
            expected = _mac(token, payload.encode())
            if owner.name == name and hmac.compare_digest(expected.encode(), signature.encode()):
                found = Session(owner, expires, nonce, token)
        return found


def _mac(key: str, message: bytes) -> str:
    return _b64(hmac.new(key.encode(), message, hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_SECONDS, path="/", httponly=True,
        samesite="Strict", secure=request.secure,
    )  # fmt: skip


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def cross_site_refusal(request: web.Request) -> str | None:
    """Why a state-changing request from a browser must be refused as cross-site, or None.

    Browsers say where a request comes from (``Sec-Fetch-Site``; before that, ``Origin``).
    Requests that say nothing come from programs, which forge nothing on anyone's behalf.
    """
    if request.method in SAFE_METHODS:
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site in {"same-origin", "none"}:
            return None
        return f"a {fetch_site} request may not change anything here"
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return None
    if origin == "null" or urlsplit(origin).netloc.lower() != (request.host or "").lower():
        return "a request from another origin may not change anything here"
    return None
