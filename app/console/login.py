"""Logging in and out of the console: with a key (or a FLOWLOG_TOKENS token), or through the
installation's identity provider (app/console/oidc.py). A failed log-in is an event in the log
(``LoginRefused``) and counts against its client address: ten a minute, then the address waits."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from flowlog.access.identity import Identity
from flowlog.access.limiter import Coalescer, FailureLimit
from flowlog.api import keys
from flowlog.api.access import clear_session_cookie, set_session_cookie
from flowlog.api.context import context_of
from flowlog.api.errors import ClientGone
from flowlog.console.pages import render
from flowlog.workflow.caller import Caller

log = logging.getLogger("flowlog.console")

FAILURES = web.AppKey("login_failures", FailureLimit)
LOGIN_EVENTS = web.AppKey("login_events", Coalescer)
"""At most one LoginRefused event a second for the whole process (the rest are counted in the
next, and in the metric): addresses are many, the log is one."""


def address_of(request: web.Request) -> str:
    """The client's address (the peer's: a proxy's forwarded headers can be forged)."""
    return request.remote or "unknown"


async def form_of(request: web.Request) -> Any:
    try:
        return await request.post()
    except ConnectionError as exc:
        raise ClientGone(str(exc)) from exc


def local_target(target: str) -> str:
    """Where to go after logging in: a path of this site only (no open redirect), "/" for
    anything else.

    A path is one "/" not followed by another, with no "\\" (browsers read "//host" and
    "/\\host" as another site), and no control or space character (browsers strip tabs and
    newlines from a Location, so "/<tab>/host" is "//host"; aiohttp refuses CR, LF and NUL in
    a header); and the same once percent-decoded (a proxy may decode "%2F"), where an encoded
    space ("%20") is a path's own.
    """
    decoded = unquote(target)
    for form in (target, decoded):
        if not form.startswith("/") or form[1:2] == "/" or "\\" in form:
            return "/"
    if any(ch.isspace() or not ch.isprintable() for ch in target):
        return "/"
    if any(not (ch.isprintable() or ch == " ") for ch in decoded):
        return "/"
    return target


def _values(request: web.Request, target: str, problem: str = "") -> dict[str, Any]:
    return {"next": target, "problem": problem,
            "single_sign_on": request.app[keys.ACCESS].single_sign_on}  # fmt: skip


async def login_page(request: web.Request) -> web.StreamResponse:
    if not request.app[keys.ACCESS].enabled:
        return web.Response(status=303, headers={"Location": "/"})
    target = local_target(request.query.get("next", "/"))
    return render(request, "login.html.j2", _values(request, target))


def limited(request: web.Request, method: str, target: str) -> web.StreamResponse | None:
    """The page that tells a client with too many failed log-ins to wait, or None."""
    wait = request.app[FAILURES].blocked(address_of(request))
    if not wait:
        return None
    request.app[keys.METRICS].logins.labels(method=method, outcome="limited").inc()
    problem = f"Too many failed log-ins from your address: try again in {int(wait) + 1} s."
    response = render(request, "login.html.j2", _values(request, target, problem), status=429)
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


async def refuse(request: web.Request, method: str, reason: str) -> None:
    """Counts and records a failed log-in (the reason is the log's, not the person's)."""
    address = address_of(request)
    request.app[FAILURES].failed(address)
    request.app[keys.METRICS].logins.labels(method=method, outcome="refused").inc()
    ctx = context_of(request)
    extra = {"request_id": ctx.request_id, "method": method, "reason": reason}
    log.warning("console log-in refused", extra=extra)
    repeats = request.app[LOGIN_EVENTS].admit("login")
    if repeats is None:
        return
    caller = Caller(actor="anonymous", trace_id=ctx.trace_id, request_id=ctx.request_id)
    try:
        await request.app[keys.ACCESS].store.login_refused(
            method=method, address=address, reason=reason, caller=caller, repeats=repeats
        )
    except Exception as exc:  # the refusal stands even if the log cannot take it now
        log.warning("refused log-in not recorded", extra={"error": repr(exc)})


def signed_in(request: web.Request, identity: Identity, target: str, method: str
              ) -> web.StreamResponse:  # fmt: skip
    cookie, _ = request.app[keys.ACCESS].open_session(identity)
    request.app[keys.METRICS].logins.labels(method=method, outcome="ok").inc()
    log.info("console log-in", extra={"actor": identity.actor, "role": identity.role.value})
    response = web.Response(status=303, headers={"Location": target})
    set_session_cookie(response, request, cookie)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    access = request.app[keys.ACCESS]
    if not access.enabled:
        return web.Response(status=303, headers={"Location": "/"})
    form = await form_of(request)
    token, target = str(form.get("token", "")), local_target(str(form.get("next", "/")))
    refusal = limited(request, "key", target)
    if refusal is not None:
        return refusal
    identity = await access.recognise(token)
    if identity is None:
        await refuse(request, "key", "not a valid key")
        values = _values(request, target, "That key is not valid.")
        return render(request, "login.html.j2", values, status=401)
    return signed_in(request, identity, target, "key")


async def logout(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    form = await form_of(request)
    if ctx.session is not None and not ctx.session.accepts_csrf(str(form.get("csrf_token", ""))):
        values = {
            "status": 403,
            "message": "The log-out form was not this session's; nothing changed.",
        }
        return render(request, "error.html.j2", values, 403)
    response = web.Response(status=303, headers={"Location": "/login"})
    clear_session_cookie(response)
    return response
