"""flowlog's event store: an append-only, totally ordered log of events in PostgreSQL.

It knows nothing of workflows. See docs/eventstore.md for the design.
"""

from flowlog.eventstore.batch import BatchResult, GroupCommit, StreamAppend
from flowlog.eventstore.errors import (
    IMMUTABLE_LOG_SQLSTATE,
    TRANSIENT_ERRORS,
    AnyVersionContention,
    EventStoreError,
    LogHorizonError,
    OrderConflict,
    RemovedEvents,
    SubscriptionConflict,
    TransactionAborted,
    WrongExpectedVersion,
)
from flowlog.eventstore.events import (
    LOG_START,
    Checkpoint,
    Expect,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
)
from flowlog.eventstore.notify import CHANNEL, Listener, Notifier, wait_any
from flowlog.eventstore.pool import connect, create_pool
from flowlog.eventstore.store import (
    AppendAlso,
    AppendHook,
    EventReader,
    EventStore,
    Transaction,
    check_log_horizon,
)
from flowlog.eventstore.subscription import BatchOutcome, Handler, Subscription
from flowlog.eventstore.wakeloop import wake_or_poll

__all__ = [
    "CHANNEL",
    "IMMUTABLE_LOG_SQLSTATE",
    "LOG_START",
    "TRANSIENT_ERRORS",
    "AnyVersionContention",
    "AppendAlso",
    "AppendHook",
    "BatchOutcome",
    "BatchResult",
    "Checkpoint",
    "EventReader",
    "EventStore",
    "EventStoreError",
    "Expect",
    "ExpectedVersion",
    "GroupCommit",
    "Handler",
    "Listener",
    "LogHorizonError",
    "NewEvent",
    "Notifier",
    "OrderConflict",
    "RecordedEvent",
    "RemovedEvents",
    "StreamAppend",
    "Subscription",
    "SubscriptionConflict",
    "Transaction",
    "TransactionAborted",
    "WrongExpectedVersion",
    "check_log_horizon",
    "connect",
    "create_pool",
    "wait_any",
    "wake_or_poll",
]
