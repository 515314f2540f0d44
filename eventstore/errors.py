"""The event store's errors. Driver errors are translated into these in one place (store.py)."""

from __future__ import annotations

import asyncpg

IMMUTABLE_LOG_SQLSTATE = "FL001"
"""The SQLSTATE with which the database refuses UPDATE, DELETE and TRUNCATE of events."""


class EventStoreError(Exception):
    """Base class of every error the event store raises on purpose."""


class WrongExpectedVersion(EventStoreError):
    """An append expected a stream version that is not the stream's version; nothing was written."""

    def __init__(self, stream_id: str, expected: int | None, actual: int | None) -> None:
        """``expected`` None is "any version"; ``actual`` None is "unknown": a concurrent
        append won the race inside a transaction that can no longer be queried."""
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        wanted = "no stream" if expected == 0 else ("any" if expected is None else expected)
        found = "unknown (a concurrent append won)" if actual is None else actual
        super().__init__(
            f"Wrong expected version: {wanted} (Stream: {stream_id}, Stream Version: {found})"
        )


class AnyVersionContention(WrongExpectedVersion):
    """An any-version append lost the race for the next version of its stream on every try
    (the store retries, with random growing pauses, a bounded number of times): the stream is
    contended beyond what the bound allows. Nothing was written; trying again is safe."""

    def __init__(self, stream_id: str, attempts: int) -> None:
        super().__init__(stream_id, None, None)
        self.attempts = attempts
        self.args = (
            f"Any-version append to {stream_id} lost the race for the next version "
            f"{attempts} times in a row; nothing was written (try again, or append with an "
            "expected version)",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class OrderConflict(EventStoreError):
    """A transaction appended to a stream after another transaction, younger than it, had
    committed to that stream: its events would sort before that one's in the log's order.
    Nothing of the transaction is kept; run it again (a new transaction sorts after)."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(
            f"a younger transaction appended to {stream_id} first; run the transaction again"
        )


class TransactionAborted(EventStoreError):
    """A store transaction failed inside (an error was caught and swallowed there), so
    PostgreSQL rolled it back at COMMIT: nothing it wrote was kept."""


class LogHorizonError(EventStoreError):
    """The log holds transaction ids the server has not assigned yet (it was restored into
    another cluster with them); reading it in order would misplace new events."""


class RemovedEvents(EventStoreError):
    """A reader is behind events that were removed from the log (archived): reading on would
    skip them silently. Its message names the removal; ``EventStore.removal_horizon()`` is
    where a reader that knowingly skips them may start."""


class SubscriptionConflict(EventStoreError):
    """A subscription's checkpoint moved under a running batch; the batch was rolled back."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # A pooled connection cut by the server in the middle of a statement can come back from
    # the pool once more in a half-closed state (the pool skips asyncpg's reset query, see
    # eventstore/pool.py); its next use fails with this, and it is then discarded.
    asyncpg.InternalClientError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    OSError,
)
"""Errors after which the connection or the moment, not the request, is at fault: a retry
(after re-reading what may have been written) is the answer. ``pg_terminate_backend`` shows
up as AdminShutdownError or a lost connection."""
