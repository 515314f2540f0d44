"""The client's transport: requests in the server's models, answers read into them, and
transient failures retried with backoff.

Transient failures (the connection, a timeout, 502/503/504) are retried with backoff: reads and
PUTs as they are, POSTs with the ``Idempotency-Key`` the client gives each (so a retried write
has one effect), DELETEs only when the server said it did nothing (503). Every write's commit
position is presented on the reads that follow (read-your-writes through read replicas).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import BaseModel

from flowlog.client.errors import FlowlogError, Unavailable, error_for
from flowlog.replicas.position import HEADER as POSITION
from flowlog.replicas.position import parse_position
from flowlog.wire.base import Request
from flowlog.wire.envelope import Page

M = TypeVar("M", bound=BaseModel)

FLOWS = "/api/v1/workflow/"
_RETRY_STATUSES = frozenset({502, 503, 504})


class Transport:
    """The HTTP side of ``FlowlogClient``: its session, headers, retries and position."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.2,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``retries``: attempts after the first for a transient failure, ``backoff`` seconds
        the first wait (doubling, with jitter). ``session``: one of yours (kept open)."""
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._session = session
        self._own_session = session is None
        self.position: str | None = None
        """The commit position of this client's latest write: its reads present it."""

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    # -- the wire ----------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _send(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        body: Request | None = None,
        query: Request | None = None,
        key: str | None = None,
        within: float | None = None,
    ) -> M:
        envelope = await self._call(method, path, body=body, query=query, key=key,
                                    within=within)  # fmt: skip
        return model.model_validate(envelope["data"])

    async def _send_paged(
        self, method: str, path: str, model: type[M], *, query: Request
    ) -> tuple[M, Page]:
        envelope = await self._call(method, path, query=query)
        return model.model_validate(envelope["data"]), Page.model_validate(envelope["page"])

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Request | None = None,
        query: Request | None = None,
        key: str | None = None,
        within: float | None = None,
    ) -> dict[str, Any]:
        """``within``: seconds for this request, instead of the client's (a long poll's)."""
        headers = dict(self._headers)
        if method == "POST":
            # One key for every attempt: a write retried after a lost answer has one effect.
            headers["Idempotency-Key"] = key or uuid.uuid4().hex
        if method == "GET" and self.position is not None:
            headers[POSITION] = self.position
        data = None if body is None else body.model_dump_json(exclude_unset=True, by_alias=True)
        if data is not None:
            headers["Content-Type"] = "application/json"
        params = None if query is None else _params(query)
        url = self.base_url + path
        more: dict[str, Any] = {}
        if within is not None:
            more["timeout"] = aiohttp.ClientTimeout(total=within)
        attempt = 0
        while True:
            try:
                async with self._client().request(
                    method, url, data=data, params=params, headers=headers, **more
                ) as response:
                    text = await response.text()
                    if response.status in _RETRY_STATUSES and self._retryable(
                        method, response.status
                    ):
                        raise _Transient(response.status, text)
                    return self._answer(response, text)
            except (_Transient, aiohttp.ClientConnectionError, TimeoutError) as exc:
                attempt += 1
                status = exc.status if isinstance(exc, _Transient) else None
                if attempt > self._retries or not self._retryable(method, status):
                    raise _unavailable(exc, url) from None
                await asyncio.sleep(self._delay(attempt))

    def _answer(self, response: aiohttp.ClientResponse, text: str) -> dict[str, Any]:
        try:
            envelope = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            envelope = None
        if response.status >= 400 or not isinstance(envelope, dict) or envelope.get("code"):
            raise error_for(response.status, envelope if isinstance(envelope, dict) else None,
                            text)  # fmt: skip
        position = response.headers.get(POSITION)
        if position is not None:
            self._advance(position)
        return envelope

    def _advance(self, position: str) -> None:
        if self.position is None or parse_position(position) > parse_position(self.position):
            self.position = position

    @staticmethod
    def _retryable(method: str, status: int | None) -> bool:
        """Whether trying again is safe: any request the server refused with 503 (it did
        nothing); otherwise all but DELETE (POSTs carry their Idempotency-Key)."""
        return status == 503 or method != "DELETE"

    @property
    def timeout(self) -> float:
        """Seconds a request may take (its answer included), as the client was made with."""
        return self._timeout.total or 0.0

    def _delay(self, attempt: int) -> float:
        return random.uniform(0, self._backoff * 2 ** (attempt - 1))

    def _stream(self, flow_id: str, headers: dict[str, str]) -> Any:
        if self.position is not None:
            headers = {**headers, POSITION: self.position}
        return self._client().get(
            self.base_url + FLOWS + quoted(flow_id) + "/events/stream",
            headers={**self._headers, **headers},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
        )


class _Transient(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.text = text


def envelope_of(text: str) -> dict[str, Any] | None:
    try:
        envelope = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return envelope if isinstance(envelope, dict) else None


def _unavailable(exc: BaseException, url: str) -> FlowlogError:
    if isinstance(exc, _Transient):
        return error_for(exc.status, envelope_of(exc.text), exc.text)
    return Unavailable(f"flowlog at {url} could not be reached: {exc or type(exc).__name__}")


def _params(query: Request) -> dict[str, str]:
    """A query model as URL parameters (absent: unset or null)."""
    params: dict[str, str] = {}
    for name, value in query.model_dump(mode="json", exclude_none=True).items():
        params[name] = "true" if value is True else "false" if value is False else str(value)
    return params


def quoted(segment: str) -> str:
    return quote(segment, safe="")
