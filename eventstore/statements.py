"""Counting the SQL statements a process sends, for benchmarks and tests: a statement count
is a cost that does not drift with the machine's load, as times do.

Off by default (then nothing is installed on connections and nothing is counted). Switched on
before the pool opens (``count_statements()``; ``flowlog serve`` does so when
``FLOWLOG_COUNT_STATEMENTS`` is set), every connection flowlog opens logs its statements into
``STATEMENTS`` (asyncpg's own type look-ups aside): a process-wide total (``flowlog_sql_statements_total`` of ``/metrics``), and
the texts of those sent on behalf of a task that records them (``recording()``), including
tasks it starts meanwhile (a group commit's flusher), which inherit its context.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
from asyncpg.connection import LoggedQuery

ENV = "FLOWLOG_COUNT_STATEMENTS"
"""Set (to anything but empty or 0): ``flowlog serve`` counts its statements."""

_RECORDING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "flowlog_recorded_statements", default=None
)


@dataclass
class StatementCount:
    on: bool = False
    total: int = 0

    def logged(self, record: LoggedQuery) -> None:
        # asyncpg calls loggers with call_soon from the task that ran the statement, so the
        # context here is that task's.
        if _introspection(record.query):
            return
        self.total += 1
        recorded = _RECORDING.get()
        if recorded is not None:
            recorded.append(record.query)


STATEMENTS = StatementCount()

_INTROSPECTION = ("WITH RECURSIVE typeinfo_tree", "SELECT current_setting('jit')",
                  "SELECT set_config('jit'")  # fmt: skip


def _introspection(query: str) -> bool:
    """asyncpg's own look-ups of a type it has not seen (once per connection and type): not
    the statements of any one operation."""
    return " ".join(query.split()).startswith(_INTROSPECTION)


def count_statements(on: bool = True) -> None:
    """Counts the statements of connections opened from now on (``on``), or stops."""
    STATEMENTS.on = on


def counting_from_env() -> bool:
    """Whether the environment asks for counting (``ENV``)."""
    return os.environ.get(ENV, "") not in ("", "0")


def watch(conn: asyncpg.Connection) -> None:
    """Logs ``conn``'s statements into ``STATEMENTS`` when counting is on."""
    if STATEMENTS.on:
        conn.add_query_logger(STATEMENTS.logged)


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """The texts of the statements sent within the block by this task and those it starts
    (counting must be on; a logger's call comes a loop turn after its statement: yield once
    before reading the list)."""
    texts: list[str] = []
    token = _RECORDING.set(texts)
    try:
        yield texts
    finally:
        _RECORDING.reset(token)
