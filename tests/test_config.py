"""Configuration from the environment."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from flowlog.archive.policy import Retention
from flowlog.config import ConfigError, Settings, default_data_dir
from flowlog.config_help import VARIABLES
from flowlog.database import quote_ident, with_database


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    # Unset: the command chooses (text on a terminal, JSON otherwise; INFO for serve and
    # worker, WARNING for the commands a person runs).
    assert (settings.log_format, settings.log_level) == (None, None)


def test_values_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "FLOWLOG_HOST": "0.0.0.0",
            "FLOWLOG_PORT": "9000",
            "FLOWLOG_DATA_DIR": "/srv/pg",
            "FLOWLOG_LOG_LEVEL": "debug",
            "FLOWLOG_LOG_FORMAT": "TEXT",
            "FLOWLOG_OWNER_URL": "postgresql://owner@h/db",
        }
    )
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.owner_url == "postgresql://owner@h/db"
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.data_dir == Path("/srv/pg")
    assert (settings.log_level, settings.log_format) == ("DEBUG", "text")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWLOG_PORT": "http"}, "whole number"),
        ({"FLOWLOG_PORT": "0"}, "between"),
        ({"FLOWLOG_POOL_SIZE": "-3"}, "between"),
        ({"FLOWLOG_LOG_FORMAT": "xml"}, "one of"),
        ({"FLOWLOG_OWNER_URL": "mysql://h/db", "DATABASE_URL": "postgresql://h/db"}, "postgresql"),
        ({"FLOWLOG_OWNER_URL": "postgresql://h/db"}, "DATABASE_URL is not"),
        ({"FLOWLOG_READ_DATABASE_URL": "postgresql://r/db"}, "DATABASE_URL is not"),
        (
            {
                "FLOWLOG_READ_DATABASE_URL": "postgresql://r/db,redis://r",
                "DATABASE_URL": "postgresql://p/db",
            },
            "postgresql",
        ),
        ({"FLOWLOG_REPLICA_MAX_LAG": "0"}, "between"),
        ({"FLOWLOG_READ_WAIT_MS": "soon"}, "whole number"),
        ({"FLOWLOG_RETENTION": "30d"}, "FLOWLOG_ARCHIVE_DIR is not set"),
        ({"FLOWLOG_RETENTION": "a month", "FLOWLOG_ARCHIVE_DIR": "/a"}, "not a retention"),
        (
            {"FLOWLOG_RETENTION_DEFINITIONS": "backup", "FLOWLOG_ARCHIVE_DIR": "/a"},
            "name=retention",
        ),
        ({"FLOWLOG_ARCHIVE_INTERVAL": "-1"}, "between"),
    ],
)
def test_bad_values_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env(env)
    assert next(iter(env)) in str(caught.value)


def test_root_keeps_its_data_outside_its_home() -> None:
    assert default_data_dir(0, Path("/root")) == Path("/var/lib/flowlog/pgdata")
    assert default_data_dir(1000, Path("/home/u")) == Path("/home/u/.local/share/flowlog/pgdata")


def test_database_urls_and_identifiers() -> None:
    assert with_database("postgresql://u@h:5/a?sslmode=off", "b") == (
        "postgresql://u@h:5/b?sslmode=off"
    )
    assert with_database("postgresql://u@/a?host=%2Ftmp%2Fd", "x y") == (
        "postgresql://u@/x%20y?host=%2Ftmp%2Fd"
    )
    assert quote_ident('we"ird') == '"we""ird"'
    with pytest.raises(ValueError, match="identifier"):
        quote_ident("")


def test_read_replicas_from_the_environment() -> None:
    """Comma-separated URLs; a comma inside one URL (libpq's several hosts) stays in it."""
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@p/db",
            "FLOWLOG_READ_DATABASE_URL": (
                "postgresql://u@r1/db, postgres://u@r2,r3/db?target_session_attrs=any"
            ),
            "FLOWLOG_REPLICA_MAX_LAG": "5",
            "FLOWLOG_READ_WAIT_MS": "250",
        }
    )
    assert settings.read_database_urls == (
        "postgresql://u@r1/db",
        "postgres://u@r2,r3/db?target_session_attrs=any",
    )
    reads = settings.reads
    assert (reads.urls, reads.max_lag, reads.wait) == (settings.read_database_urls, 5.0, 0.25)
    assert Settings.from_env({}).reads.urls == ()


def test_retention_from_the_environment() -> None:
    # Unset: the environment says nothing (the database's retention stays as it is).
    assert Settings.from_env({}).retention is None
    assert Settings.from_env({}).archive is None  # no directory: this process does not archive
    settings = Settings.from_env(
        {
            "FLOWLOG_RETENTION": "30d",
            "FLOWLOG_RETENTION_DEFINITIONS": "backup=7d, audit=off",
            "FLOWLOG_ARCHIVE_DIR": "/srv/archive",
            "FLOWLOG_ARCHIVE_INTERVAL": "60",
        }
    )
    archive = settings.archive
    assert archive is not None
    assert archive.directory == Path("/srv/archive")
    assert settings.archive_interval == 60.0
    retention = settings.retention
    assert retention is not None
    assert retention.default == timedelta(days=30)
    assert retention.by_definition == {"backup": timedelta(days=7), "audit": None}
    selections = retention.selections()
    assert [(s.keep, s.names, s.excluded) for s in selections] == [
        (timedelta(days=7), ("backup",), ()),
        (timedelta(days=30), None, ("audit", "backup")),
    ]
    assert retention.describe() == "default 30d, audit off, backup 7d"
    assert Settings.from_env({"FLOWLOG_RETENTION": "off"}).retention == Retention()


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_table_is_the_settings_model() -> None:
    """The README's rows of flowlog's settings are the model's: names, defaults and meanings,
    in its order (the other rows are of variables read by others: OpenTelemetry, libpq, and
    the failpoints of tests)."""
    lines = README.read_text().splitlines()
    start = lines.index("| variable | default | meaning |")
    rows = lines[start + 2 : lines.index("", start)]
    ours = [row for row in rows if re.match(r"\| `(DATABASE_URL|FLOWLOG_(?!FAILPOINT)\w+)`", row)]
    expected = [f"| `{v.name}` | {v.shown} | {v.description} |" for v in VARIABLES]
    assert ours == expected, "the README's rows should be:\n" + "\n".join(expected)


SSO = {"FLOWLOG_OIDC_ISSUER": "https://sso.example.com/realms/main",
       "FLOWLOG_OIDC_CLIENT_ID": "flowlog", "FLOWLOG_OIDC_CLIENT_SECRET": "s3cret",
       "FLOWLOG_OIDC_MAP": "ops=acme:operator, platform=*:superadmin"}  # fmt: skip


def test_single_sign_on_settings() -> None:
    assert Settings.from_env({}).oidc is None
    settings = Settings.from_env({**SSO, "FLOWLOG_PUBLIC_URL": "https://flowlog.example.com/"})
    oidc = settings.oidc
    assert oidc is not None
    assert (oidc.issuer, oidc.client_id, oidc.claim) == (SSO["FLOWLOG_OIDC_ISSUER"], "flowlog",
                                                         "groups")  # fmt: skip
    assert [(e.value, e.tenant, e.role) for e in oidc.mapping] == [
        ("ops", "acme", "operator"), ("platform", "*", "superadmin")
    ]  # fmt: skip
    assert settings.public_url == "https://flowlog.example.com"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWLOG_OIDC_ISSUER": "https://sso.example.com"},
         "FLOWLOG_OIDC_ISSUER is set but FLOWLOG_OIDC_CLIENT_ID, FLOWLOG_OIDC_CLIENT_SECRET and "
         "FLOWLOG_OIDC_MAP are not"),
        ({"FLOWLOG_OIDC_MAP": "ops=acme:operator"},
         "FLOWLOG_OIDC_MAP is set but FLOWLOG_OIDC_ISSUER is not"),
        ({**SSO, "FLOWLOG_OIDC_MAP": "ops=acme"},
         "FLOWLOG_OIDC_MAP is not a usable mapping: an OIDC mapping entry is value=tenant:role"),
        ({**SSO, "FLOWLOG_OIDC_MAP": "ops=*:viewer"}, "only for superadmin"),
        ({**SSO, "FLOWLOG_OIDC_MAP": "ops=acme:root"}, "the role 'root' is none of"),
        ({**SSO, "FLOWLOG_OIDC_ISSUER": "http://sso.example.com"},
         "FLOWLOG_OIDC_ISSUER: the OIDC issuer must be an https URL"),
        ({**SSO, "FLOWLOG_OIDC_SCOPES": "email profile"},
         "FLOWLOG_OIDC_SCOPES: the OIDC scopes must include openid"),
        ({"FLOWLOG_PUBLIC_URL": "flowlog.example.com"}, "FLOWLOG_PUBLIC_URL must be an http(s)"),
        ({"FLOWLOG_PUBLIC_URL": "https://x.example/?a=1"}, "FLOWLOG_PUBLIC_URL must be"),
    ],
)  # fmt: skip
def test_bad_single_sign_on_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    assert message in str(refused.value)
