"""Logging in to the console through the installation's identity provider (single sign-on,
``FLOWLOG_OIDC_*``): ``GET /login/oidc`` sends the person there, ``GET /login/oidc/callback``
takes them back, signed in with the tenant and role the mapping gives them.

What the sign-in must remember between the two (flowlog.access.oidc.OidcPending, and where to
go afterwards) travels in a cookie of its own: short-lived, HttpOnly, only sent to
``/login/oidc``, SameSite=Lax (the provider sends the person back by a cross-site top-level
navigation, which drops a Strict cookie), and MAC'd with the installation's session key, so
that nothing but this service's own ``begin`` can be finished. Each callback clears it: a
replayed callback finds no sign-in to finish. A sign-in ends on a page that goes on by itself
to the page asked for (see ``_landing``). Every refusal is counted against the client's
address and recorded (``LoginRefused``), as a wrong key is.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from typing import Any, Final

import orjson
from aiohttp import web

from flowlog.access.identity import Identity
from flowlog.access.oidc import PENDING_MAX_AGE, OidcClient, OidcPending, OidcRefused
from flowlog.access.roles import Role
from flowlog.access.sessions import b64, mac
from flowlog.api import keys
from flowlog.api.access import secure_cookies
from flowlog.console.login import limited, local_target, refuse, signed_in
from flowlog.console.pages import render

log = logging.getLogger("flowlog.console")

PENDING_COOKIE: Final = "flowlog_oidc"
COOKIE_PATH: Final = "/login/oidc"
CALLBACK_PATH: Final = "/login/oidc/callback"
METHOD: Final = "oidc"
MAX_TARGET: Final = 2000
"""Characters of a ``next`` kept through the sign-in (a longer one goes to ``/``): the cookie
must stay under what browsers keep."""
MAX_NAME: Final = 200
_DOMAIN: Final = b"flowlog oidc pending\x00"
"""Set before what the pending cookie's MAC covers: a session cookie's MAC, made with the same
key, can never pass for it."""
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_PROVIDER_ERROR = re.compile(r"^[a-z_]{1,64}$")

_START_AGAIN = "This sign-in was not started here, or took too long. Start again."
_DECLINED = "The identity provider did not sign you in"


async def oidc_login(request: web.Request) -> web.StreamResponse:
    client = request.app.get(keys.OIDC)
    if client is None:
        return _not_found(request)
    target = _target(request.query.get("next", "/"))
    refusal = limited(request, METHOD, target)
    if refusal is not None:
        return refusal
    redirect_uri = _redirect_uri(request)
    if redirect_uri is None:
        return _page(request, target, "This address cannot start a sign-in.", 400)
    try:
        await client.discover()  # once; retried at the next log-in if the provider was down
    except OidcRefused as refused:
        # The provider's trouble, not the person's: not counted against their address.
        log.warning("single sign-on unavailable", extra={"reason": refused.reason})
        return _page(request, target, refused.reason, 503)
    url, pending = client.begin(redirect_uri)
    response = web.Response(status=303, headers={"Location": url})
    response.set_cookie(
        PENDING_COOKIE, seal(request, pending, target), max_age=PENDING_MAX_AGE,
        path=COOKIE_PATH, httponly=True, samesite="Lax", secure=secure_cookies(request),
    )  # fmt: skip
    return response


async def oidc_callback(request: web.Request) -> web.StreamResponse:
    client = request.app.get(keys.OIDC)
    if client is None:
        return _not_found(request)
    kept = unseal(request, request.cookies.get(PENDING_COOKIE))
    target = kept[1] if kept is not None else "/"
    refusal = limited(request, METHOD, target)
    if refusal is not None:
        return _cleared(refusal)
    try:
        identity = await _finish(request, client, kept)
    except OidcRefused as refused:
        await refuse(request, METHOD, refused.reason)
        return _cleared(_page(request, target, refused.reason, 401))
    return _cleared(_landing(request, identity, target))


def _landing(request: web.Request, identity: Identity, target: str) -> web.StreamResponse:
    """The session's cookie, on a page that goes on to ``target`` by itself: a redirect would
    continue the provider's cross-site navigation, which the SameSite=Strict session cookie
    does not ride on (the person would land on the log-in page again)."""
    redirect = signed_in(request, identity, target, METHOD)
    values = {"next": target, "person": identity}
    page = render(request, "signed_in.html.j2", values)
    for name, cookie in redirect.cookies.items():
        page.cookies[name] = cookie
    page.headers["Cache-Control"] = "no-store"
    return page


async def _finish(
    request: web.Request, client: OidcClient, kept: tuple[OidcPending, str] | None
) -> Identity:
    query = request.query
    if "error" in query:
        error = query.get("error", "")
        shown = f" ({error})" if _PROVIDER_ERROR.match(error) else ""
        raise OidcRefused(f"{_DECLINED}{shown}.")
    if kept is None:
        raise OidcRefused(_START_AGAIN)
    codes, states = query.getall("code", []), query.getall("state", [])
    if len(codes) != 1 or len(states) != 1:
        raise OidcRefused("The identity provider sent back no usable sign-in code.")
    found = await client.finish(codes[0], states[0], kept[0])
    shown = _shown_name(found.name, found.subject)
    return Identity(METHOD, found.subject, found.tenant, Role(found.role), display=shown)


# -- the pending cookie ------------------------------------------------------------------------


def seal(request: web.Request, pending: OidcPending, target: str) -> str:
    payload = b64(orjson.dumps({"pending": pending.as_dict(), "next": target}))
    return f"{payload}.{mac(request.app[keys.ACCESS].secret, _DOMAIN + payload.encode())}"


def unseal(request: web.Request, cookie: str | None) -> tuple[OidcPending, str] | None:
    """The sign-in and the target a cookie keeps, if this service sealed it, else None."""
    if not cookie or len(cookie) > 4096:
        return None
    payload, _, signature = cookie.partition(".")
    expected = mac(request.app[keys.ACCESS].secret, _DOMAIN + payload.encode())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    try:
        data: Any = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
        pending = OidcPending.from_dict(data["pending"])
        target = data["next"]
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError, OidcRefused):
        return None
    return (pending, _target(target)) if isinstance(target, str) else None


# -- helpers -----------------------------------------------------------------------------------


def _target(text: str) -> str:
    return local_target(text) if len(text) <= MAX_TARGET else "/"


def _redirect_uri(request: web.Request) -> str | None:
    """Where the provider sends people back: under FLOWLOG_PUBLIC_URL when set, else this
    request's own scheme and host (a forged Host only makes a URI the provider refuses: it
    sends codes to its registered redirect URIs only)."""
    public = request.app[keys.SETTINGS].public_url
    if public is not None:
        return public + CALLBACK_PATH
    host = request.host or ""
    if not _HOST.match(host):
        return None
    return f"{request.scheme}://{host}{CALLBACK_PATH}"


def _shown_name(name: str, subject: str) -> str:
    """The name the console shows and the log records (``oidc:<name>``): the provider's, if
    it is a sensible one, else its subject (a session cookie must stay small)."""
    for candidate in (name, subject):
        if 0 < len(candidate) <= MAX_NAME and candidate.isprintable():
            return candidate
    return subject[:MAX_NAME].encode("unicode_escape").decode()[:MAX_NAME] or "unknown"


def _cleared(response: web.StreamResponse) -> web.StreamResponse:
    response.del_cookie(PENDING_COOKIE, path=COOKIE_PATH)
    return response


def _page(request: web.Request, target: str, problem: str, status: int) -> web.Response:
    values = {"next": target, "problem": problem, "single_sign_on": True}
    return render(request, "login.html.j2", values, status=status)


def _not_found(request: web.Request) -> web.Response:
    values = {"status": 404, "message": "This server has no single sign-on."}
    return render(request, "error.html.j2", values, 404)
