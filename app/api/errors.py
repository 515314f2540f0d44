"""Errors as answers: a handler's exception becomes the envelope with a non-zero code and an
honest HTTP status, without its details (a fault is logged, not told). With the JSON writer
that every answer of the API goes through."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import hdrs, web
from pydantic import ValidationError

from flowlog.api.metrics import CLIENT_GONE_STATUS
from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.workflow.errors import Code, WorkflowError

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
    Code.TASK_NOT_FOUND: 404,
    Code.TASK_GONE: 409,
    Code.SCHEDULE_NOT_FOUND: 404,
    Code.SCHEDULE_FAILED: 409,
    Code.UNAUTHORIZED: 401,
    Code.FORBIDDEN: 403,
    Code.ROLE_REQUIRED: 403,
    Code.KEY_NOT_FOUND: 404,
    Code.KEY_NAME_TAKEN: 409,
    Code.MIGRATION_RUNNING: 409,
    Code.WEBHOOK_NOT_FOUND: 404,
    Code.WEBHOOK_URL_REFUSED: 400,
    Code.DELIVERY_NOT_FOUND: 404,
    Code.BAD_REPLAY_START: 400,
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
    Code.RULE_NOT_FOUND: 404,
    Code.BAD_CLOUDEVENT: 400,
    Code.UNSUPPORTED_EVENT_MODE: 415,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
}
ERROR_DESCRIPTIONS = {
    400: "bad input (the message says what; plain text if the HTTP parser refused it)",
    401: "no valid bearer token",
    403: "the caller's role does not allow it (40139, naming the role needed), or a cross-site "
    "request, or a console session's request without its CSRF token",
    404: "unknown flow, definition or route",
    409: "the flow's state does not allow it (its code says which command, as TiUniManager's)",
    410: "the flow was archived (data says which archive, and where)",
    413: "request body too large",
    415: "a Content-Encoding the service does not decode",
    422: "the Idempotency-Key was used for another request",
    500: "a fault of the service",
    503: "the database cannot be reached; try again",
}


class ClientGone(Exception):
    """The client hung up before its request was read (or its answer written): nothing to
    answer, and nothing to do with the database."""


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


async def answer(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``handler``'s answer, or the error envelope of what it raised."""
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
