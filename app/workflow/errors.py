"""The workflow's errors and their codes: the seed's (40100-40107) and flowlog's own (40108+).

The numbers travel in the REST envelope's ``code`` and in failed nodes' events, so they are
part of the contract: never renumber one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class Code(enum.IntEnum):
    # The seed's codes (TiUniManager workflow2).
    CREATE_FAILED = 40100
    QUERY_FAILED = 40101
    DETAIL_FAILED = 40102
    START_FAILED = 40103
    DEFINE_NOT_FOUND = 40104
    POLLING_TIMEOUT = 40105
    STOP_FAILED = 40106
    CANCEL_FAILED = 40107
    # flowlog's own.
    NODE_TIMEOUT = 40108
    """A sync node ran longer than its timeout."""
    NODE_FAILED = 40109
    """An executor or poll function raised (its message says why)."""
    NODE_INTERRUPTED = 40110
    """The worker running the node was lost (crash, lease expired); the node runs again."""
    FLOW_NOT_FOUND = 40111
    INVALID_DEFINITION = 40112
    CONTEXT_FAILED = 40113
    """InitContext refused (the flow has ended, or the value is not JSON)."""
    RETRY_FAILED = 40114
    """Retry refused (only flows in Error, or stopped on a failed node, can be retried)."""
    BAD_INPUT = 40115
    NODE_CANCELED = 40116
    """The node was interrupted by Cancel."""
    BUSY = 40117
    """The flow kept changing under the command; nothing was done, try again."""
    UNAUTHORIZED = 40118
    """No valid bearer token (when tokens are configured)."""
    NOT_FOUND = 40119
    """No such route."""
    METHOD_NOT_ALLOWED = 40120
    FORBIDDEN = 40122
    """A cross-site request from a browser, or a console session's request without its CSRF
    token: refused, nothing changed."""
    TOO_LARGE = 40121
    """The request body is larger than the service accepts."""
    BAD_ENCODING = 40123
    """The request body does not decode as its Content-Encoding says."""
    UNSUPPORTED_ENCODING = 40124
    """A Content-Encoding the service does not decode (HTTP 415)."""
    IDEMPOTENCY_REUSED = 40125
    """An idempotency key sent again with another request (HTTP 422): nothing was done."""
    CALLBACK_NOT_FOUND = 40126
    """No callback waits for this token (forged, another tenant's, or of no flow) (HTTP 404)."""
    CALLBACK_REFUSED = 40127
    """The node is not waiting for a callback any more (completed, canceled, timed out or run
    again) or never was a callback node (HTTP 409): nothing was done."""
    CALLBACK_TIMEOUT = 40128
    """A callback node's deadline passed before anyone completed it."""
    CALLBACK_FAILED = 40129
    """The outside world completed a callback node with status "fail" (its message says why)."""
    SCHEDULE_NOT_FOUND = 40130
    SCHEDULE_FAILED = 40131
    """A schedule change refused (HTTP 409): it was deleted, or changed meanwhile."""
    FLOW_ARCHIVED = 40132
    """The flow was archived (retention, docs/archival.md): it takes no command, and once its
    events have left the hot log it is read from its archive (HTTP 410)."""
    DEFINITION_TAKEN = 40133
    """A definition over REST named as one this tenant does not own (another tenant's, one
    shared by every tenant, or one from code) (HTTP 409): nothing was registered."""
    OUTPUT_UNSTORABLE = 40134
    """A node's executor (or the service an ``http`` executor called) answered a value flowlog
    cannot store: NUL, a lone surrogate, an integer beyond 64 bits, NaN, an error code that is
    not a positive 32-bit integer. The message names the field; nothing of the answer is
    recorded."""
    CHILDREN_FAILED = 40135
    """A map, parallel or subflow node failed because its children did: more failed than it
    tolerates, a branch it needed, or its sub-flow (the message says which)."""
    CHILDREN_NOT_STARTED = 40136
    """A map, parallel or subflow node could not start its children: the map's list is not
    in the context (or not a list, or longer than 10,000), or the child definition is not
    known to this process."""
    TASK_NOT_FOUND = 40137
    """No task of the caller's answers to this task token (forged, another tenant's, or not a
    token at all) (HTTP 404): nothing was done."""
    TASK_GONE = 40138
    """The task token's claim is no longer the task's (completed already, its lease lapsed and
    it was taken back, or its flow was canceled) (HTTP 409): nothing was done."""
    ROLE_REQUIRED = 40139
    """The caller's role does not allow this (HTTP 403): the message names the role it needs
    and the one the caller has; the refusal is recorded in the log. Nothing was done."""
    KEY_NOT_FOUND = 40140
    """No key of the caller's tenant has this id (HTTP 404)."""
    KEY_NAME_TAKEN = 40141
    """The tenant has (or had) a key of this name (HTTP 409): a name names one key for ever,
    since the log's actor ``key:<name>`` must not stand for two. Nothing was made."""
    MIGRATION_RUNNING = 40142
    """A migration of the same definition's flows is running (HTTP 409): one at a time per
    definition; nothing was done, send it again when the other has ended."""
    RULE_NOT_FOUND = 40150
    """No event rule of the caller's tenant has this id (HTTP 404)."""
    BAD_CLOUDEVENT = 40151
    """The request is not a CloudEvent flowlog takes: an attribute missing or malformed, the
    spec version not 1.0, data that is not storable JSON (HTTP 400); the message says which.
    Nothing was recorded."""
    UNSUPPORTED_EVENT_MODE = 40152
    """A CloudEvents content mode or data type flowlog does not take: batch mode, a format
    other than JSON, binary mode with data that is not JSON (HTTP 415). Nothing was recorded."""
    WEBHOOK_NOT_FOUND = 40143
    """No webhook subscription of the caller's tenant has this id, or it was deleted
    (HTTP 404): nothing was done."""
    WEBHOOK_URL_REFUSED = 40144
    """A webhook URL no delivery may go to (HTTP 400): not http(s), credentials, a fragment, or
    an address that is not public and not in FLOWLOG_WEBHOOK_ALLOW; the message says why.
    Nothing was made or changed."""
    DELIVERY_NOT_FOUND = 40147
    """A position the subscription has no dead letter at (HTTP 404): nothing was re-sent."""
    BAD_REPLAY_START = 40148
    """A replay's start is not one event of the log (both or neither of ``fromPosition`` and
    ``fromTime``, a time to come, a position past the log's end, events archived away) (HTTP
    400): the cursor did not move."""
    EVENT_MATCH_MISSING = 40155
    """A callback node waiting for an event could not render its match: a placeholder names
    nothing in the flow's context (a node failure; the message names the placeholder)."""
    INTERNAL = 50000
    """A fault of the service (logged with the request id); nothing about it is sent."""
    UNAVAILABLE = 50300
    """The database cannot be reached right now; try again."""


class WorkflowError(Exception):
    """A refusal or failure with a code from ``Code``; it changed nothing."""

    def __init__(self, code: Code, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = details or {}
        """More for the client (the envelope's ``data``): where an archived flow went, say."""

    def __str__(self) -> str:
        return f"{self.message} ({self.code.value})"


class DefinitionNotFound(WorkflowError):
    def __init__(self, name: str, version: str | None = None) -> None:
        what = name if version is None else f"{name} version {version}"
        super().__init__(Code.DEFINE_NOT_FOUND, f"{what} workflow definition does not exist")


class DefinitionTaken(WorkflowError):
    """A tenant registered a definition under a name it does not own: ``owner`` is the
    name's (None: a definition from code; "": shared by every tenant)."""

    def __init__(self, name: str, owner: str | None) -> None:
        if owner is None:
            why = f"{name} is defined in code"
        elif owner == "":
            why = f"{name} is shared by every tenant (registered while the server was open)"
        else:
            why = f"the name {name} belongs to another tenant"
        super().__init__(Code.DEFINITION_TAKEN, f"{why}; a definition over REST needs another name")


class FlowArchived(WorkflowError):
    """The flow's events left the hot log for an archive: ``details`` says which and where."""

    def __init__(self, flow_id: str, details: Mapping[str, Any]) -> None:
        super().__init__(
            Code.FLOW_ARCHIVED,
            f"workflow {flow_id} was archived (archive {details.get('archiveId')}): "
            "read it with flowlog history, or restore it with flowlog import",
            details,
        )


class FlowNotFound(WorkflowError):
    def __init__(self, flow_id: str) -> None:
        super().__init__(Code.FLOW_NOT_FOUND, f"workflow {flow_id} does not exist")


class InvalidDefinition(WorkflowError):
    def __init__(self, name: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            Code.INVALID_DEFINITION,
            f"workflow definition {name!r} is invalid: " + "; ".join(problems),
        )


class NodeError(Exception):
    """Raised by an executor or poll function to fail its node with a code of its choice."""

    def __init__(self, message: str, code: int = Code.NODE_FAILED) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message


class StaleOutcome(Exception):
    """The command speaks of a node that is not the running node (any more)."""
