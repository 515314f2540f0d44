"""Why a command could not use flowlog's database, in words a person reads at a terminal
(not an exception's repr), with what to do about it when flowlog knows."""

from __future__ import annotations

import enum
import os
import re
import shlex
import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from flowlog.database import quote_ident


class Exit(enum.IntEnum):
    """The exit statuses of every command (docs/cli.md), for scripts to test."""

    OK = 0
    FAILED = 1
    """Refused, failed, or found differences; a database unreachable (but see UNREACHABLE)."""
    USAGE = 2
    """Bad usage: an option, argument or variable flowlog cannot use (a malformed flow id)."""
    NOT_FOUND = 3
    """No such flow or schedule."""
    UNREACHABLE = 4
    """``flows``: flowlog, or its database, could not be reached."""


CANNOT_LOG_IN: tuple[type[BaseException], ...] = (
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
)
"""The server answered, and refused the connection: no such database, role or password. Not
transient (waiting will not help), but the database cannot be reached all the same."""

_MISSING = re.compile(r'database "(.+)" does not exist')


@dataclass(frozen=True, slots=True)
class Problem:
    words: str
    """What went wrong, and where (host, port, database; never a password)."""
    hint: str = ""
    """What to do about it, when there is a known remedy."""

    def __str__(self) -> str:
        return f"{self.words}; {self.hint}" if self.hint else self.words


def database_problem(exc: BaseException, url: str | None) -> Problem:
    """``exc``, raised while a command used the database of ``url`` (None: the embedded
    server), said in words."""
    where = _where(url)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        found = _MISSING.search(str(exc))
        name = found.group(1) if found else _database_of(url)
        server = _where(url, database=False)
        create = shlex.join(["createdb", *_libpq_options(url), name])
        return Problem(
            f"database {name!r} does not exist" + (f" on {server}" if server else ""),
            f"create it (as a role allowed to): {create}, or in psql: "
            f"CREATE DATABASE {quote_ident(name)};",
        )
    if isinstance(exc, socket.gaierror):
        return Problem(f"cannot connect to {where or 'the database'}: {exc.strerror or exc}")
    if isinstance(exc, OSError) and isinstance(exc, ConnectionError | TimeoutError):
        # asyncio says "Connect call failed ('127.0.0.1', 1)": the errno says why.
        reason = os.strerror(exc.errno).lower() if exc.errno else "timed out"
        return Problem(f"cannot connect to {where or 'the database'}: {reason}")
    return Problem((str(exc) or type(exc).__name__) + (f" ({where})" if where else ""))


def _parts(url: str | None) -> tuple[str, int | None, str, str]:
    """Host (or socket directory), port, user and database of a libpq URL."""
    if not url:
        return "", None, "", ""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = unquote(parts.hostname or "") or query.get("host", [""])[0]
    try:
        port = parts.port or int(query.get("port", ["0"])[0]) or None
    except ValueError:
        port = None
    user = unquote(parts.username or "") or query.get("user", [""])[0]
    return host, port, user, unquote(parts.path.lstrip("/"))


def _where(url: str | None, *, database: bool = True) -> str:
    host, port, _, name = _parts(url)
    if not host:
        return ""
    return f"{host}{f':{port}' if port else ''}{f'/{name}' if database and name else ''}"


def _database_of(url: str | None) -> str:
    return _parts(url)[3] or "flowlog"


def _libpq_options(url: str | None) -> list[str]:
    host, port, user, _ = _parts(url)
    options = ["-h", host] if host else []
    options += ["-p", str(port)] if port else []
    return options + (["-U", user] if user else [])


class CommandError(Exception):
    """A command cannot run as asked (a file it cannot read, a port it cannot take)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
