"""flowlog's SQL, shipped as package data and resolved here, in one place.

``migrations/`` holds numbered, forward-only schema migrations (``NNNN_name.sql``).
``queries/`` holds named statements: each file is a sequence of blocks that start with a
``-- name: <query_name>`` line, followed by comment lines that say what the query is for
and the statement itself. Code refers to a statement by its name, never by building SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import TypeVar

_T = TypeVar("_T")

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_QUERY_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def parse_migrations(files: Mapping[str, str]) -> list[Migration]:
    """Orders migration files by number; refuses stray names and duplicate numbers."""
    migrations: dict[int, Migration] = {}
    for filename, text in files.items():
        match = _MIGRATION_NAME.match(filename)
        if match is None:
            raise ValueError(f"migration file name {filename!r} is not NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise ValueError(f"two migrations share number {version:04d}")
        migrations[version] = Migration(version, match.group(2), text)
    return [migrations[v] for v in sorted(migrations)]


def migrations() -> list[Migration]:
    """The migrations shipped with this package, in order."""
    folder = resources.files(__name__).joinpath("migrations")
    files = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }
    return parse_migrations(files)


def parse_queries(text: str) -> dict[str, str]:
    """Splits a named-query file into {name: statement}."""
    parts = _QUERY_HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"query {name!r} is defined twice")
        statement = body.strip()
        if not statement:
            raise ValueError(f"query {name!r} is empty")
        named[name] = statement
    return named


@cache
def queries(module: str) -> Mapping[str, str]:
    """The named statements of ``queries/<module>.sql``, loaded once."""
    text = resources.files(__name__).joinpath("queries", f"{module}.sql").read_text("utf-8")
    return MappingProxyType(parse_queries(text))


def load_queries(shape: type[_T], module: str) -> _T:
    """Fills a frozen dataclass of ``str`` fields from ``queries/<module>.sql``.

    The fields and the file's query names must match exactly, so that a typo or a forgotten
    statement fails when the module is imported, and mypy checks every use by attribute.
    """
    named = queries(module)
    wanted = {f.name for f in fields(shape)}  # type: ignore[arg-type]
    missing, unused = wanted - named.keys(), named.keys() - wanted
    if missing or unused:
        raise ValueError(
            f"queries/{module}.sql does not match {shape.__name__}: "
            f"missing {sorted(missing)}, not declared {sorted(unused)}"
        )
    return shape(**{name: named[name] for name in wanted})
