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
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from flowlog.access.limiter import FailureLimit
from flowlog.api.middleware import CONSOLE_ROUTES
from flowlog.console import login, oidc, pages, present, queues, schedules

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
    routes = app.router
    name = CONSOLE_ROUTES
    routes.add_get("/", pages.flows_page, name=name + "flows")
    routes.add_get("/go", pages.go_to_flow, name=name + "go")
    routes.add_get("/flows/{flow_id}", pages.flow_page, name=name + "flow")
    routes.add_get("/definitions", pages.definitions_page, name=name + "definitions")
    routes.add_get("/definitions/{name}", pages.definition_page, name=name + "definition")
    routes.add_get("/schedules", schedules.schedules_page, name=name + "schedules")
    routes.add_get("/schedules/{schedule_id}", schedules.schedule_page, name=name + "schedule")
    routes.add_get("/queues", queues.queues_page, name=name + "queues")
    routes.add_get("/login", login.login_page, name=name + "login_page")
    routes.add_post("/login", login.login, name=name + "login")
    routes.add_get("/login/oidc", oidc.oidc_login, name=name + "oidc_login")
    routes.add_get("/login/oidc/callback", oidc.oidc_callback, name=name + "oidc_callback")
    routes.add_post("/logout", login.logout, name=name + "logout")
    routes.add_get("/console/flows", pages.flows_fragment, name=name + "flows_fragment")
    routes.add_get("/console/flows/{flow_id}", pages.flow_fragment, name=name + "flow_fragment")
    routes.add_get("/console/queues", queues.queues_fragment, name=name + "queues_fragment")
    routes.add_get("/console/live", pages.live, name=name + "live")
    routes.add_static(STATIC_PREFIX, STATIC, name=name + "static")
    routes.add_static(SWAGGER_PREFIX, SWAGGER_UI, name=name + "swagger")


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
