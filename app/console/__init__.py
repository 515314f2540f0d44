"""The operator console: web pages served by ``flowlog serve`` at ``/`` (the API stays under
``/api/v1/``), to watch, understand and steer flows.

Server-rendered (Jinja2, autoescaped: everything a user wrote is shown as text) with a little
plain JavaScript for live updates, time travel and actions, which go through the REST API
like any client's. Everything it needs ships in the package: its templates and static files
live beside this module, Swagger UI's files come from a package dependency, and nothing is
fetched from another host, so it works offline. Its routes are named ``console.*``: they
check access themselves (a log-in page instead of 401), see ``flowlog.api.access``.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from flowlog.access.limiter import Coalescer, FailureLimit
from flowlog.access.roles import ANYONE, Role
from flowlog.api.context import context_of
from flowlog.api.expect import continue_or_ignore
from flowlog.api.middleware import CONSOLE_ROUTES
from flowlog.console import activity, login, oidc, pages, present, queues, schedules, webhooks
from flowlog.console.pages import render

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
SWAGGER_UI = Path(str(importlib.util.find_spec("swagger_ui").origin)).parent / "static"  # type: ignore[union-attr]
"""Swagger UI's own files, from the swagger-ui-py package (found, not imported: its module
would import its framework adapters)."""
STATIC_PREFIX = "/console/static"
SWAGGER_PREFIX = "/console/vendor/swagger-ui"
SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js")

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
"""Scripts, styles and everything else from this server only, and no inline script: text a
user wrote cannot run even if some template forgot to escape it."""


def setup_console(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = _versioned(STATIC, STATIC_PREFIX)
    env.globals["swagger"] = _versioned(SWAGGER_UI, SWAGGER_PREFIX, SWAGGER_FILES)
    env.globals["status_words"] = present.STATUS_WORDS
    env.globals["task_badges"] = present.TASK_BADGES
    env.filters.update(
        iso=present.iso,
        absolute=present.absolute,
        relative=present.relative,
        duration=present.duration,
        status_class=present.status_class,
        short_id=present.short_id,
        pretty_json=present.pretty_json,
        shown_value=present.shown_value,
        waiting_text=present.waiting_text,
        limit_text=present.limit_text,
        limit_listed=present.limit_listed,
    )
    app.on_response_prepare.append(_security_headers)
    app[login.FAILURES] = FailureLimit()
    app[login.LOGIN_EVENTS] = Coalescer(1.0)
    for method, path, handler, name, role in PAGES:
        app.router.add_route(method, path, _needs(role, handler), name=CONSOLE_ROUTES + name,
                             expect_handler=continue_or_ignore)  # fmt: skip
    for prefix, folder, name in FILES:
        app.router.add_static(prefix, folder, name=CONSOLE_ROUTES + name,
                              expect_handler=continue_or_ignore)  # fmt: skip


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PAGES: tuple[tuple[str, str, Handler, str, Role | None], ...] = (
    ("GET", "/", pages.flows_page, "flows", Role.VIEWER),
    ("GET", "/go", pages.go_to_flow, "go", Role.VIEWER),
    ("GET", "/flows/{flow_id}", pages.flow_page, "flow", Role.VIEWER),
    ("GET", "/definitions", pages.definitions_page, "definitions", Role.VIEWER),
    ("GET", "/definitions/{name}", pages.definition_page, "definition", Role.VIEWER),
    ("GET", "/schedules", schedules.schedules_page, "schedules", Role.VIEWER),
    ("GET", "/schedules/{schedule_id}", schedules.schedule_page, "schedule", Role.VIEWER),
    ("GET", "/queues", queues.queues_page, "queues", Role.VIEWER),
    ("GET", "/webhooks", webhooks.webhooks_page, "webhooks", Role.VIEWER),
    ("GET", "/webhooks/{webhook_id}", webhooks.webhook_page, "webhook", Role.VIEWER),
    ("GET", "/activity", activity.activity_page, "activity", Role.VIEWER),
    ("GET", "/login", login.login_page, "login_page", ANYONE),
    ("POST", "/login", login.login, "login", ANYONE),
    ("GET", "/login/oidc", oidc.oidc_login, "oidc_login", ANYONE),
    ("GET", "/login/oidc/callback", oidc.oidc_callback, "oidc_callback", ANYONE),
    ("POST", "/logout", login.logout, "logout", ANYONE),
    ("GET", "/console/flows", pages.flows_fragment, "flows_fragment", Role.VIEWER),
    ("GET", "/console/flows/{flow_id}", pages.flow_fragment, "flow_fragment", Role.VIEWER),
    ("GET", "/console/queues", queues.queues_fragment, "queues_fragment", Role.VIEWER),
    ("GET", "/console/activity", activity.activity_fragment, "activity_fragment", Role.VIEWER),
    ("GET", "/console/live", pages.live, "live", Role.VIEWER),
)
"""The console's routes, each with the least role that may see it (ANYONE: logging in and
out). The actions on its pages go through the REST API, whose routes say their own roles;
docs/api.md's table of routes and roles lists both (tests/api/test_route_roles.py)."""

FILES: tuple[tuple[str, Path, str], ...] = (
    (STATIC_PREFIX, STATIC, "static"),
    (SWAGGER_PREFIX, SWAGGER_UI, "swagger"),
)
"""The console's files (scripts, styles, Swagger UI's): anyone's, as the log-in page needs
them."""


def role_of_route(name: str) -> Role | None:
    """The role a console route needs (by its route name); KeyError for a route not here."""
    for _, _, _, page_name, role in PAGES:
        if CONSOLE_ROUTES + page_name == name:
            return role
    if name in {CONSOLE_ROUTES + file_name for _, _, file_name in FILES}:
        return ANYONE
    raise KeyError(name)


def _needs(role: Role | None, handler: Handler) -> Handler:
    """The page, for those whose role allows it (a person who is not logged in is sent to log
    in by the page itself)."""
    if role is None:
        return handler

    async def guarded(request: web.Request) -> web.StreamResponse:
        identity = context_of(request).identity
        if identity is not None and not identity.role.allows(role):
            message = f"This page needs the {role} role; you have the {identity.role} role."
            return render(request, "error.html.j2", {"status": 403, "message": message}, 403)
        return await handler(request)

    return guarded


def _versioned(folder: Path, prefix: str, names: tuple[str, ...] = ()) -> dict[str, str]:
    """File name -> URL with a content hash, computed once: a new release's files are never
    mistaken for cached old ones. ``names``: only these files (default: all)."""
    urls = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and (not names or path.name in names):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            urls[path.name] = f"{prefix}/{path.name}?v={digest}"
    return urls


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if request.path.startswith((STATIC_PREFIX, SWAGGER_PREFIX)) and "v" in request.query:
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
