"""TiUniManager's envelope, which every JSON answer comes in: ``code``, ``message`` and
``data``, and ``page`` for a list."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import Field

from flowlog.wire.base import Response

T = TypeVar("T")


class Page(Response):
    page: int
    pageSize: int
    total: int


class Envelope(Response, Generic[T]):
    code: int = 0
    message: str = "OK"
    data: T


class PagedEnvelope(Response, Generic[T]):
    code: int = 0
    message: str = "OK"
    data: T
    page: Page


class Empty(Response):
    pass


class ErrorEnvelope(Response):
    code: int
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
