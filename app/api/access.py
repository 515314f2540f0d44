"""The HTTP side of access: the console's session cookie, and whether a browser may change
anything (identities, keys and sessions themselves are in app/access/).

A browser sends cookies by itself, so a request that is not authenticated by a bearer token
is checked for cross-site forgery before it may change anything: a cross-origin request
(``Sec-Fetch-Site``, or ``Origin`` against ``Host`` from older browsers) is refused, and one
that rides on a session must carry the session's CSRF token (``X-CSRF-Token``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web

from flowlog.access.sessions import SESSION_SECONDS
from flowlog.api import keys

SESSION_COOKIE = "flowlog_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def secure_cookies(request: web.Request) -> bool:
    """Whether cookies are sent over HTTPS only: the request came over TLS, or the service is
    reached at an https FLOWLOG_PUBLIC_URL (TLS ended at a proxy, plain HTTP behind it)."""
    public = request.app[keys.SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=SESSION_SECONDS, path="/", httponly=True,
        samesite="Strict", secure=secure_cookies(request),
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
