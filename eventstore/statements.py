"""Counting the SQL statements a process sends, for benchmarks and tests: a statement count
is a cost that does not drift with the machine's load, as times do.

Off by default (then nothing is installed on connections and nothing is counted). Switched on
before the pool opens (``count_statements()``), every connection flowlog opens logs its
statements (asyncpg's own type look-ups aside) into ``STATEMENTS``: a process-wide total, every
text in order while ``STATEMENTS.log`` is a list, and the texts of those sent on behalf of a
task that records them (``recording()``), including tasks it starts meanwhile (a group
commit's flusher), which inherit its context.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
from asyncpg.connection import LoggedQuery

_RECORDING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "flowlog_recorded_statements", default=None
)


@dataclass
class StatementCount:
    on: bool = False
    total: int = 0
    log: list[str] | None = None
    """When a list: every statement's text, in the order their loggers ran."""

    def logged(self, record: LoggedQuery) -> None:
        # asyncpg calls loggers with call_soon from the task that ran the statement, so the
        # context here is that task's.
        if _introspection(record.query):
            return
        self.total += 1
        if self.log is not None:
            self.log.append(record.query)
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
