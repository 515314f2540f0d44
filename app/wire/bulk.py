"""One action on many flows (``POST /api/v1/workflow/bulk``): the request, and an answer
with a line per flow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flowlog.wire.base import ContextKey, FlowId, JsonValue, Request, Response
from flowlog.wire.flows import FlowFilter, FlowStatusName

BULK_LIMIT = 1000
BulkAction = Literal["start", "stop", "cancel", "retry"]


class BulkRequest(Request):
    """One action on many flows: the flows named, or a page of those matching a filter."""

    action: BulkAction
    workFlowIds: list[FlowId] | None = Field(None, min_length=1, max_length=BULK_LIMIT)
    filter: FlowFilter | None = None
    """The flows a list with these filters shows (the tenant's own, with a token)."""
    cursor: str | None = Field(None, min_length=1, max_length=500)
    """With ``filter``: continue after the flows of the previous answer (its ``nextCursor``)."""
    limit: int = Field(100, ge=1, le=BULK_LIMIT)
    """With ``filter``: at most this many flows, newest first."""
    reason: str = Field("", max_length=1000)
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """Retry only: context changes applied to each flow before its failed node runs again."""

    @model_validator(mode="after")
    def _one_selection(self) -> BulkRequest:
        if (self.workFlowIds is None) == (self.filter is None):
            raise ValueError("name the flows (workFlowIds) or a filter, not both nor neither")
        if self.cursor is not None and self.filter is None:
            raise ValueError("cursor continues a filter's selection; it needs the filter")
        if self.workFlowIds is not None and len(set(self.workFlowIds)) != len(self.workFlowIds):
            raise ValueError("workFlowIds names a flow twice")
        if self.context and self.action != "retry":
            raise ValueError("context changes go with retry only")
        return self


class BulkResult(Response):
    workFlowId: str
    code: int
    """0: done; else why this flow was refused (the code a single command would answer)."""
    message: str
    status: FlowStatusName | None = None
    """The flow's status after the action (when it was done)."""


class BulkResponse(Response):
    action: BulkAction
    results: list[BulkResult]
    """One per selected flow, in the order selected: none is left out."""
    succeeded: int
    failed: int
    nextCursor: str | None = None
    """With a filter: more flows may match; send the same request with this cursor."""
