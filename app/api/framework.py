"""A small routing layer over aiohttp: each operation declares its body, query and answer as
pydantic models; requests are validated (400 on bad input), answers wrapped in the seed's
envelope, errors mapped to honest HTTP statuses, and the OpenAPI document generated from the
same declarations.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

import asyncpg
import orjson
from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from flowlog.api.access import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    Owner,
    Session,
    Tokens,
    cross_site_refusal,
)
from flowlog.api.json_keys import refuse_duplicate_keys
from flowlog.api.metrics import CLIENT_GONE_STATUS
from flowlog.api.models import (
    JSON_VALUE_MARK,
    JSON_VALUE_SCHEMA,
    PATH_PARAMETERS,
    Envelope,
    ErrorEnvelope,
    Page,
    PagedEnvelope,
    Request,
)
from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.replicas.position import HEADER as POSITION_HEADER
from flowlog.storable import storable_text
from flowlog.telemetry import tracing
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.idempotency import DEFAULT_TTL, Idempotency

log = logging.getLogger("flowlog.api")

# WorkflowError code -> HTTP status (anything else that is a WorkflowError: 409, a conflict
# with the flow's state).
STATUS_OF: dict[int, int] = {
    Code.BAD_INPUT: 400,
    Code.CREATE_FAILED: 400,  # through the API: a context value the log cannot hold
    Code.INVALID_DEFINITION: 400,
    Code.CONTEXT_FAILED: 409,
    Code.CALLBACK_NOT_FOUND: 404,
    Code.CALLBACK_REFUSED: 409,
    Code.SCHEDULE_NOT_FOUND: 404,
    Code.SCHEDULE_FAILED: 409,
    Code.UNAUTHORIZED: 401,
    Code.FORBIDDEN: 403,
    Code.FLOW_NOT_FOUND: 404,
    Code.FLOW_ARCHIVED: 410,
    Code.DEFINE_NOT_FOUND: 404,
    Code.DEFINITION_TAKEN: 409,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.TOO_LARGE: 413,
    Code.BAD_ENCODING: 400,
    Code.UNSUPPORTED_ENCODING: 415,
    Code.IDEMPOTENCY_REUSED: 422,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
}
ERROR_DESCRIPTIONS = {
    400: "bad input (the message says what; plain text if the HTTP parser refused it)",
    401: "no valid bearer token",
    403: "a cross-site request, or a console session's request without its CSRF token",
    404: "unknown flow, definition or route",
    409: "the flow's state does not allow it (its code says which command, as TiUniManager's)",
    410: "the flow was archived (data says which archive, and where)",
    413: "request body too large",
    415: "a Content-Encoding the service does not decode",
    422: "the Idempotency-Key was used for another request",
    500: "a fault of the service",
    503: "the database cannot be reached; try again",
}


@dataclass(frozen=True, slots=True)
class Context:
    """Who asks, and the ids that follow the request into logs and event metadata."""

    tenant_id: str
    actor: str
    request_id: str
    trace_id: str
    session: Session | None = None
    """The console session the request came with (None: a bearer token, or open access)."""
    idempotency: Idempotency | None = None
    """The request's Idempotency-Key, in its tenant (POST requests only)."""


_CONTEXT = web.RequestKey("flowlog_context", Context)
_CLOSE_AFTER = web.RequestKey("flowlog_close_after", bool)
"""The request left its connection unusable (an undecodable body): close it after answering."""


def context_of(request: web.Request) -> Context:
    return request[_CONTEXT]


@dataclass(frozen=True, slots=True)
class Paged:
    data: BaseModel
    page: Page


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    handler: Handler
    response: type[BaseModel] | None
    body: type[Request] | None = None
    query: type[Request] | None = None
    paged: bool = False
    errors: tuple[int, ...] = (400,)
    tags: tuple[str, ...] = ()
    raw: bool = False
    """The handler answers itself (SSE, metrics, documents): no envelope."""
    media_type: str = "application/json"


@dataclass
class Api:
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        response: type[BaseModel] | None,
        body: type[Request] | None = None,
        query: type[Request] | None = None,
        paged: bool = False,
        errors: tuple[int, ...] = (400,),
        tags: tuple[str, ...] = (),
        raw: bool = False,
        media_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            operation = Operation(
                method=method, path=path, summary=summary, handler=handler, response=response,
                body=body, query=query, paged=paged, errors=errors, tags=tags, raw=raw,
                media_type=media_type,
            )  # fmt: skip
            self.operations.append(operation)
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for operation in self.operations:
            endpoint = _endpoint(operation)
            app.router.add_route(operation.method, operation.path, endpoint)
            alias = alias_of(operation.path)
            if alias is not None:
                app.router.add_route(operation.method, alias, endpoint)

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        return build_openapi(self.operations, title=title, version=version)


def alias_of(path: str) -> str | None:
    """The other spelling a collection's path answers to (without its trailing slash):
    TiUniManager's clients call the flows' collection both ways. Not in the OpenAPI document,
    which names each operation once."""
    return path.rstrip("/") if path.endswith("/") and len(path) > 1 else None


def _endpoint(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        check_query_encoding(request)
        kwargs: dict[str, Any] = dict(request.match_info)
        for name, value in kwargs.items():
            if not storable_text(value):
                raise WorkflowError(Code.BAD_INPUT, f"{name}: may not contain NUL characters")
        if operation.query is not None:
            kwargs["query"] = operation.query.model_validate(_query_dict(request, operation.query))
        if operation.body is not None:
            raw = await _read_body(request)
            refuse_duplicate_keys(raw)
            kwargs["body"] = operation.body.model_validate_json(raw)
        result = await operation.handler(request, **kwargs)
        if operation.raw:
            assert isinstance(result, web.StreamResponse)
            return result
        if operation.paged:
            assert isinstance(result, Paged)
            return json_response(
                {"code": 0, "message": "OK", "data": _dump(result.data), "page": _dump(result.page)}
            )
        return json_response({"code": 0, "message": "OK", "data": _dump(result)})

    return endpoint


def _query_dict(request: web.Request, model: type[Request]) -> dict[str, str]:
    unknown = set(request.query) - set(model.model_fields)
    if unknown:
        raise WorkflowError(Code.BAD_INPUT, f"unknown query parameters: {sorted(unknown)}")
    repeated = [key for key in request.query if len(request.query.getall(key)) > 1]
    if repeated:
        raise WorkflowError(Code.BAD_INPUT, f"query parameters given twice: {sorted(repeated)}")
    return dict(request.query)


class ClientGone(Exception):
    """The client hung up before its request was read (or its answer written): nothing to
    answer, and nothing to do with the database."""


CONTENT_CODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate", "br", "zstd"})
"""What a request body may be compressed with (aiohttp decodes them; Brotli and zstandard
come with flowlog's dependencies)."""


async def _read_body(request: web.Request) -> bytes:
    if request.content_type not in {"application/json", ""}:
        raise WorkflowError(
            Code.BAD_INPUT, "the body must be JSON (Content-Type: application/json)"
        )
    codings = [c.strip().lower() for c in request.headers.get(hdrs.CONTENT_ENCODING, "").split(",")]
    unknown = sorted({c for c in codings if c} - CONTENT_CODINGS)
    if unknown:
        raise WorkflowError(
            Code.UNSUPPORTED_ENCODING,
            f"Content-Encoding {', '.join(unknown)} is not supported "
            f"(use {', '.join(sorted(CONTENT_CODINGS - {'x-gzip'}))})",
        )
    try:
        return await request.read()
    except RequestPayloadError:  # the body does not decode as its encoding says
        # The rest of the body is unreadable: answer, then close the connection, rather than
        # let aiohttp drain it after the answer (it would fail again, and log it as a fault).
        request.content.feed_eof()
        request[_CLOSE_AFTER] = True
        raise WorkflowError(
            Code.BAD_ENCODING, f"the body is not valid {', '.join(codings)}"
        ) from None
    except ConnectionError as exc:
        raise ClientGone(str(exc)) from exc


def check_query_encoding(request: web.Request) -> None:
    """A query string must decode as UTF-8: aiohttp would read ``%ff`` as U+FFFD, and a list
    filtered on it would answer, wrongly, that nothing matches."""
    raw = request.rel_url.raw_query_string
    try:
        unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise WorkflowError(Code.BAD_INPUT, "the query string is not valid UTF-8") from None


def _dump(model: BaseModel | None) -> Any:
    return {} if model is None else model.model_dump(mode="json")


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def error_response(code: int, message: str, status: int, **data: Any) -> web.Response:
    return json_response({"code": int(code), "message": message, "data": data}, status)


def _replacing(exc: web.HTTPException, answer: web.Response) -> web.Response:
    """``answer`` with the headers aiohttp's own error carried (``Allow`` on a 405, say)."""
    for name in (hdrs.ALLOW, hdrs.RETRY_AFTER):
        if name in exc.headers:
            answer.headers[name] = exc.headers[name]
    return answer


# -- middlewares ---------------------------------------------------------------------------


OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"})
CONSOLE_ROUTES = "console."
"""Routes named with this prefix are the console's: its pages answer a missing log-in with a
redirect to the log-in page, not 401, so the middleware lets them through."""


RequestObserver = Callable[[str, str, int, float], None]
"""Called once per request: method, route template, status, seconds."""


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def make_middlewares(
    tokens: Tokens, observe: RequestObserver, idempotency_ttl: timedelta = DEFAULT_TTL
) -> list[Any]:
    @web.middleware
    async def context_and_log(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = _header_id(request, "X-Request-Id")
        # A trace id of its own, else the request span's (traceparent), else a new one.
        trace_id = _header_id(request, "X-Trace-Id", tracing().trace_id())
        status = 500
        ctx: Context | None = None
        try:
            owner = tokens.resolve(request.headers.get("Authorization"))
            session = None
            if owner is None:
                session = tokens.session(request.cookies.get(SESSION_COOKIE))
                owner = session.owner if session is not None else None
            refusal = None if owner is not None and session is None else _forgery(request, session)
            if tokens.enabled and owner is None and not _open(request):
                response: web.StreamResponse = error_response(
                    Code.UNAUTHORIZED, "a bearer token is required", 401
                )
                response.headers["WWW-Authenticate"] = "Bearer"
            elif refusal is not None:
                response = error_response(Code.FORBIDDEN, refusal, 403)
            elif (key := _idempotency_key(request)) == "":
                response = error_response(
                    Code.BAD_INPUT,
                    f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters",
                    400,
                )
            else:
                ctx = _context(owner, request_id, trace_id, session)
                if key is not None:
                    idempotency = Idempotency(key, ctx.tenant_id, idempotency_ttl)
                    ctx = dataclasses.replace(ctx, idempotency=idempotency)
                request[_CONTEXT] = ctx
                response = await _answer(request, handler)
            if not response.prepared:
                response.headers["X-Request-Id"] = request_id
                if request.get(_CLOSE_AFTER):
                    response.force_close()
            status = response.status
            return response
        finally:
            seconds = time.perf_counter() - started
            observe(*_route_labels(request), status, seconds)
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "request_id": request_id,
                    "trace_id": trace_id,
                    "tenant": ctx.tenant_id if ctx else None,
                },
            )

    return [context_and_log]


def _context(
    owner: Owner | None, request_id: str, trace_id: str, session: Session | None
) -> Context:
    if owner is None:
        return Context("", "anonymous", request_id, trace_id)
    return Context(owner.tenant, owner.actor, request_id, trace_id, session)


def _idempotency_key(request: web.Request) -> str | None:
    """The POST's Idempotency-Key; "" for one that cannot be a key; None when there is none."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None or request.method != "POST":
        return None
    return value if _IDEMPOTENCY_KEY.match(value) else ""


def _open(request: web.Request) -> bool:
    name = request.match_info.route.name or ""
    return request.path in OPEN_PATHS or name.startswith(CONSOLE_ROUTES)


def _forgery(request: web.Request, session: Session | None) -> str | None:
    """Why a request that a browser may have sent on its own must be refused, or None.

    The console's own forms (log-in, log-out) check their CSRF field themselves.
    """
    refusal = cross_site_refusal(request)
    if refusal is not None or session is None or request.method in SAFE_METHODS:
        return refusal
    if (request.match_info.route.name or "").startswith(CONSOLE_ROUTES):
        return None
    if not session.accepts_csrf(request.headers.get(CSRF_HEADER)):
        return f"a console session's request must carry its {CSRF_HEADER} header"
    return None


def _route_labels(request: web.Request) -> tuple[str, str]:
    """Method and route template: flow ids never become labels; unmatched paths share one."""
    resource = request.match_info.route.resource
    route = "unmatched" if resource is None else resource.canonical
    method = request.method if request.method in hdrs.METH_ALL else "OTHER"
    return method, route


def _header_id(request: web.Request, name: str, otherwise: str | None = None) -> str:
    value = request.headers.get(name, "")
    if value and len(value) <= 128 and value.isprintable():
        return value
    return otherwise or uuid.uuid4().hex


async def _answer(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        details = [
            {"loc": [str(part) for part in error["loc"]], "message": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        first = details[0] if details else {"loc": [], "message": "invalid"}
        where = ".".join(first["loc"]) or "body"
        return error_response(Code.BAD_INPUT, f"{where}: {first['message']}", 400, errors=details)
    except WorkflowError as exc:
        return error_response(exc.code, exc.message, STATUS_OF.get(exc.code, 409), **exc.details)
    except ClientGone as exc:
        # Not a failure of ours, and not the database's: counted apart (status 499).
        log.info("client disconnected", extra={"path": request.path, "error": str(exc)})
        return web.Response(status=CLIENT_GONE_STATUS)
    except web.HTTPRequestEntityTooLarge:
        return error_response(Code.TOO_LARGE, "the request body is too large", 413)
    except web.HTTPNotFound:
        return error_response(Code.NOT_FOUND, f"no route {request.path}", 404)
    except web.HTTPMethodNotAllowed as exc:
        message = f"{request.method} is not allowed here"
        return _replacing(exc, error_response(Code.METHOD_NOT_ALLOWED, message, 405))
    except web.HTTPException as exc:
        return _replacing(
            exc, error_response(Code.BAD_INPUT, exc.reason or "bad request", exc.status)
        )
    except TRANSIENT_ERRORS as exc:
        log.warning("database unavailable", extra={"error": repr(exc)})
        return error_response(Code.UNAVAILABLE, "the database is unavailable; try again", 503)
    except asyncpg.PostgresError:
        log.exception("database error", extra={"path": request.path})
        return error_response(Code.INTERNAL, "internal error", 500)
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        return error_response(Code.INTERNAL, "internal error", 500)


# -- OpenAPI -------------------------------------------------------------------------------


_POSITION_PATTERN = "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$"

JsonSchemaMode = Literal["validation", "serialization"]


def build_openapi(operations: list[Operation], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``, schemas generated by pydantic."""
    wanted: dict[type[BaseModel], JsonSchemaMode] = {ErrorEnvelope: "serialization"}
    for op in operations:
        if op.body is not None:
            wanted[op.body] = "validation"
        answer = _answer_model(op)
        if answer is not None:
            wanted[answer] = "serialization"
    keys = sorted(wanted.items(), key=lambda item: item[0].__name__)
    mapping, definitions = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "summary": op.summary,
            "tags": list(op.tags),
            "operationId": op.handler.__name__,
        }
        parameters = [
            {"name": name, "in": "path", "required": True,
             "schema": PATH_PARAMETERS.get(name, {"type": "string", "minLength": 1})}
            for name in _path_names(op.path)
        ]  # fmt: skip
        if op.method == "POST":
            parameters.append(
                {"name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                 "description": "the same key with the same body, within the key's lifetime "
                 "(24 h by default), answers the first answer again and has no second effect",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                            "pattern": "^[\\x21-\\x7e]+$"}}
            )  # fmt: skip
        if op.method == "GET":
            parameters.append(
                {"name": POSITION_HEADER, "in": "header", "required": False,
                 "description": "a write's commit position (its answer's Flowlog-Position): "
                 "the answer reflects at least that write, read from a replica that has "
                 "replayed it, else from the primary",
                 "schema": {"type": "string", "pattern": _POSITION_PATTERN}}
            )  # fmt: skip
        if op.query is not None:
            schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
            required = set(schema.get("required", []))
            parameters += [
                {"name": name, "in": "query", "required": name in required, "schema": _plain(prop)}
                for name, prop in schema.get("properties", {}).items()
            ]
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            body_schema = mapping[(op.body, "validation")]
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        answer = _answer_model(op)
        answer_schema = {} if answer is None else mapping[(answer, "serialization")]
        responses: dict[str, Any] = {
            "200": {"description": "OK", "content": {op.media_type: {"schema": answer_schema}}}
        }
        if op.method != "GET":
            responses["200"]["headers"] = {
                POSITION_HEADER: {
                    "description": "the write's commit position: present it on a read "
                    "(the same header) to read this write back from a replica",
                    "schema": {"type": "string", "pattern": _POSITION_PATTERN},
                }
            }
        error_schema = mapping[(ErrorEnvelope, "serialization")]
        # Any request may be refused by the HTTP parser (a request line or header too long):
        # aiohttp answers that 400 itself, in plain text, before any middleware runs.
        statuses = {*op.errors, 400} if op.raw else {*op.errors, 400, 500, 503}
        if op.method == "POST":
            statuses.add(422)  # an Idempotency-Key sent again with another body
        for status in sorted(statuses):
            content: dict[str, Any] = {"application/json": {"schema": error_schema}}
            if status == 400:
                content["text/plain"] = {"schema": {"type": "string"}}
            responses[str(status)] = {
                "description": ERROR_DESCRIPTIONS.get(status, "error"),
                "content": content,
            }
        item["responses"] = responses
        paths.setdefault(_openapi_path(op.path), {})[op.method.lower()] = item
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": {**definitions.get("$defs", {}), "JsonValue": JSON_VALUE_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
    normalized: dict[str, Any] = _json_values(orjson.loads(orjson.dumps(document)))
    return normalized


def _json_values(node: Any) -> Any:
    """The document with every context value's mark replaced by the ``JsonValue`` schema."""
    if node == JSON_VALUE_MARK:
        return {"$ref": "#/components/schemas/JsonValue"}
    if isinstance(node, dict):
        return {key: _json_values(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_json_values(value) for value in node]
    return node


_WRAPPED: dict[tuple[type[BaseModel], bool], type[BaseModel]] = {}


def _answer_model(op: Operation) -> type[BaseModel] | None:
    """The model of an operation's 200 answer: its response, in the envelope unless raw."""
    if op.response is None or op.raw:
        return op.response
    key = (op.response, op.paged)
    if key not in _WRAPPED:
        base = PagedEnvelope if op.paged else Envelope
        _WRAPPED[key] = base[op.response]  # type: ignore[assignment]
    return _WRAPPED[key]


def _path_names(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _openapi_path(path: str) -> str:
    return "/".join(
        "{" + part[1:-1].split(":")[0] + "}" if part.startswith("{") else part
        for part in path.split("/")
    )


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: absent is how a query says null, so null is not a value."""
    if "anyOf" in prop:
        options = [p for p in prop["anyOf"] if p.get("type") != "null"]
        merged = dict(options[0]) if len(options) == 1 else {"anyOf": options}
        for key in ("default", "description", "title"):
            if key in prop:
                merged[key] = prop[key]
        prop = merged
    if prop.get("default") is None:
        prop = {k: v for k, v in prop.items() if k != "default"}
    return prop
