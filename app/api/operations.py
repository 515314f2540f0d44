"""Routes declared as operations: each declares its body, query and answer as pydantic models
(app/wire/); its endpoint validates the request for the handler (400 on bad input) and wraps
the handler's answer in the seed's envelope. The OpenAPI document is generated from the same
declarations (app/api/openapi.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel

from flowlog.access.roles import Role
from flowlog.api.authorize import authorize
from flowlog.api.context import CLOSE_AFTER
from flowlog.api.errors import ClientGone, json_response
from flowlog.api.expect import continue_or_ignore
from flowlog.api.json_keys import refuse_duplicate_keys
from flowlog.api.openapi import build_openapi
from flowlog.storable import storable_text
from flowlog.wire.base import Request
from flowlog.wire.envelope import Page
from flowlog.workflow.errors import Code, WorkflowError


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
    role: Role | None = None
    """The least role that may call it (None: anyone, identified or not)."""


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
        role: Role | None,
    ) -> Callable[[Handler], Handler]:
        """Declares a route. ``role`` has no default: a route without one is not declared
        (docs/access.md's table of routes and roles is made from these)."""

        def register(handler: Handler) -> Handler:
            operation = Operation(
                method=method, path=path, summary=summary, handler=handler, response=response,
                body=body, query=query, paged=paged, errors=errors, tags=tags, raw=raw,
                media_type=media_type, role=role,
            )  # fmt: skip
            self.operations.append(operation)
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for operation in self.operations:
            endpoint = _endpoint(operation)
            for path in (operation.path, alias_of(operation.path)):
                if path is not None:
                    app.router.add_route(operation.method, path, endpoint,
                                         expect_handler=continue_or_ignore)  # fmt: skip

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        return build_openapi(self.operations, title=title, version=version)


def alias_of(path: str) -> str | None:
    """The other spelling a collection's path answers to (without its trailing slash):
    TiUniManager's clients call the flows' collection both ways. Not in the OpenAPI document,
    which names each operation once."""
    return path.rstrip("/") if path.endswith("/") and len(path) > 1 else None


def _endpoint(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        await authorize(request, operation.role, operation.path)
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
        request[CLOSE_AFTER] = True
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
