"""The SQL shipped as package data: migration files and named queries."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pytest

from flowlog import sql
from flowlog.sql import load_queries, parse_migrations, parse_queries


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in sql.migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_every_query_file_parses_and_every_statement_is_named() -> None:
    folder = resources.files("flowlog.sql").joinpath("queries")
    names = [p.name for p in folder.iterdir() if p.name.endswith(".sql")]
    assert names
    for name in names:
        queries = sql.queries(name.removesuffix(".sql"))
        assert queries
        assert all(q.strip() for q in queries.values())


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_x.sql": ""}, "NNNN_name"),
        ({"0001_A.sql": ""}, "NNNN_name"),
        ({"0001_a.sql": "", "0001_b.sql": ""}, "share number"),
    ],
)
def test_bad_migration_names_are_refused(files: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_migrations(files)


def test_migrations_are_ordered_by_number() -> None:
    parsed = parse_migrations({"0010_c.sql": "c", "0002_b.sql": "b", "0001_a.sql": "a"})
    assert [(m.version, m.name, m.sql) for m in parsed] == [
        (1, "a", "a"),
        (2, "b", "b"),
        (10, "c", "c"),
    ]


def test_named_queries_split_on_their_headers() -> None:
    text = "-- preamble\n-- name: one\n-- what it does\nSELECT 1\n\n-- name: two\nSELECT 2;\n"
    assert parse_queries(text) == {"one": "-- what it does\nSELECT 1", "two": "SELECT 2;"}
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1\n-- name: a\nSELECT 2")
    with pytest.raises(ValueError, match="empty"):
        parse_queries("-- name: a\n\n-- name: b\nSELECT 2")


def test_a_query_shape_must_match_its_file_exactly() -> None:
    @dataclass(frozen=True)
    class TooFew:
        append: str

    with pytest.raises(ValueError, match="not declared"):
        load_queries(TooFew, "eventstore")
