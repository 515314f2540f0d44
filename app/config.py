"""Configuration from the environment (flags of the CLI override it). See the README's table."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flowlog.archive.policy import (
    ArchiveSettings,
    BadRetention,
    Retention,
    parse_definitions,
    parse_duration,
)
from flowlog.pgserver import DEFAULT_SYSTEM_USER
from flowlog.replicas.router import ReadSettings
from flowlog.workflow.reactor import ReactorSettings


class ConfigError(ValueError):
    """An environment variable has a value flowlog cannot use."""


def default_data_dir(euid: int, home: Path) -> Path:
    """Where the embedded PostgreSQL keeps its data when FLOWLOG_DATA_DIR is unset.

    Root gets a system location: root's home is usually closed to the server's own user.
    """
    if euid == 0:
        return Path("/var/lib/flowlog/pgdata")
    return home / ".local" / "share" / "flowlog" / "pgdata"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    host: str
    port: int
    data_dir: Path
    pg_system_user: str
    pool_size: int
    log_level: str | None
    """DEBUG, INFO, WARNING or ERROR; None: the command's own (INFO for serve and worker, whose
    log is their output; WARNING for commands a person runs, whose output is on stdout)."""
    log_format: str | None
    """json or text; None: text on a terminal, JSON otherwise (for log processors)."""
    tokens: str = ""
    """Bearer tokens, ``name:token:tenant`` separated by commas (FLOWLOG_TOKENS); none: open."""
    definitions: tuple[str, ...] = ()
    """Modules that define workflows (``DEFINITIONS`` or ``register(registry)``)."""
    run_reactor: bool = True
    demo: bool = False
    """``serve --demo``: the demo definitions, and demo flows to look at (app/demo.py)."""
    concurrency: int = 32
    lease_seconds: float = 30.0
    idempotency_hours: int = 24
    """How long an idempotency key is remembered (FLOWLOG_IDEMPOTENCY_HOURS)."""
    owner_url: str | None = None
    """The owner role's URL (FLOWLOG_OWNER_URL): migrations, grants, rebuilds, imports. None:
    DATABASE_URL's role does those too (and can then rewrite the log)."""
    read_database_urls: tuple[str, ...] = ()
    """Streaming replicas that serve reads (FLOWLOG_READ_DATABASE_URL, comma-separated)."""
    replica_max_lag: float = 10.0
    """Seconds behind the primary past which a replica is skipped (FLOWLOG_REPLICA_MAX_LAG)."""
    read_wait: float = 1.0
    """How long a read that presents a commit position waits for a replica to replay it
    before the primary answers it (FLOWLOG_READ_WAIT_MS)."""

    retention: Retention | None = None
    """How long ended flows stay in the hot log, as the environment says it
    (FLOWLOG_RETENTION, and per definition FLOWLOG_RETENTION_DEFINITIONS; None: it says
    nothing). Only a seed: the owner's migrate writes it into the database, whose retention
    is the one that applies (docs/archival.md)."""
    archive_dir: Path | None = None
    """Where archives are written (FLOWLOG_ARCHIVE_DIR); needed when retention is on."""
    archive_interval: float = 600.0
    """Seconds between archive runs in serve and worker (FLOWLOG_ARCHIVE_INTERVAL; 0: none,
    ``flowlog archive`` only)."""

    @property
    def archive(self) -> ArchiveSettings | None:
        """How this process archives: where to (each run applies the database's retention,
        off until the owner sets one); None without a directory."""
        if self.archive_dir is None:
            return None
        return ArchiveSettings(self.archive_dir)

    @property
    def reactor(self) -> ReactorSettings:
        return ReactorSettings(concurrency=self.concurrency, lease_seconds=self.lease_seconds)

    @property
    def reads(self) -> ReadSettings:
        return ReadSettings(
            urls=self.read_database_urls, max_lag=self.replica_max_lag, wait=self.read_wait,
            pool_size=self.pool_size,
        )  # fmt: skip

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=_database_url(env, "DATABASE_URL"),
            owner_url=_owner_url(env),
            host=env.get("FLOWLOG_HOST", "127.0.0.1"),
            port=_int(env, "FLOWLOG_PORT", 8080, 1, 65535),
            data_dir=Path(env["FLOWLOG_DATA_DIR"])
            if env.get("FLOWLOG_DATA_DIR")
            else default_data_dir(os.geteuid(), Path.home()),
            pg_system_user=_system_user(env),
            pool_size=_int(env, "FLOWLOG_POOL_SIZE", 10, 1, 1000),
            log_level=_choice(env, "FLOWLOG_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=_choice(env, "FLOWLOG_LOG_FORMAT", ("json", "text")),
            tokens=env.get("FLOWLOG_TOKENS", ""),
            definitions=tuple(
                m.strip() for m in env.get("FLOWLOG_DEFINITIONS", "").split(",") if m.strip()
            ),
            concurrency=_int(env, "FLOWLOG_CONCURRENCY", 32, 1, 10_000),
            lease_seconds=float(_int(env, "FLOWLOG_LEASE_SECONDS", 30, 1, 86_400)),
            idempotency_hours=_int(env, "FLOWLOG_IDEMPOTENCY_HOURS", 24, 1, 24 * 365),
            read_database_urls=_read_urls(env),
            replica_max_lag=float(_int(env, "FLOWLOG_REPLICA_MAX_LAG", 10, 1, 86_400)),
            read_wait=_int(env, "FLOWLOG_READ_WAIT_MS", 1000, 0, 60_000) / 1000,
            retention=_retention(env),
            archive_dir=Path(env["FLOWLOG_ARCHIVE_DIR"])
            if env.get("FLOWLOG_ARCHIVE_DIR")
            else None,
            archive_interval=float(_int(env, "FLOWLOG_ARCHIVE_INTERVAL", 600, 0, 86_400 * 7)),
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if value.upper() in allowed:
        return value.upper()
    if value.lower() in allowed:
        return value.lower()
    raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


_DATABASE_SCHEMES = frozenset({"postgresql", "postgres"})
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_SYSTEM_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _database_url(env: Mapping[str, str], name: str) -> str | None:
    """A libpq URL, checked here so that a typo is named at once, not met as an outage."""
    url = env.get(name, "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc}): {_hidden(url)!r}") from None
    if parts.scheme not in _DATABASE_SCHEMES:
        raise ConfigError(
            f"{name} must be a postgresql:// URL, not {_hidden(url)!r} "
            "(for example postgresql://flowlog@db:5432/flowlog)"
        )
    if not (parts.hostname or "host=" in parts.query):
        raise ConfigError(f"{name} names no host: {_hidden(url)!r}")
    return url


def _retention(env: Mapping[str, str]) -> Retention | None:
    default = env.get("FLOWLOG_RETENTION", "").strip()
    if not default and not env.get("FLOWLOG_RETENTION_DEFINITIONS", "").strip():
        return None
    try:
        keep = parse_duration(default) if default else None
    except BadRetention as exc:
        raise ConfigError(f"FLOWLOG_RETENTION: {exc}") from None
    try:
        own = parse_definitions(env.get("FLOWLOG_RETENTION_DEFINITIONS", ""))
    except BadRetention as exc:
        raise ConfigError(f"FLOWLOG_RETENTION_DEFINITIONS: {exc}") from None
    retention = Retention(keep, own)
    if retention.enabled and not env.get("FLOWLOG_ARCHIVE_DIR", "").strip():
        raise ConfigError(
            "FLOWLOG_RETENTION is on but FLOWLOG_ARCHIVE_DIR is not set: archived flows need "
            "a directory to go to (shared by every process that archives)"
        )
    return retention


def _read_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    name = "FLOWLOG_READ_DATABASE_URL"
    urls: list[str] = []
    # A comma also separates the hosts of one libpq URL (host1,host2): only a comma followed
    # by a new URL's scheme starts another replica.
    for part in _NEXT_URL.split(env.get(name, "")):
        url = _database_url({name: part}, name)
        if url is not None:
            urls.append(url)
    if urls and not env.get("DATABASE_URL", "").strip():
        raise ConfigError(
            f"{name} is set but DATABASE_URL is not: replicas follow a primary that flowlog "
            "reaches by DATABASE_URL (the embedded PostgreSQL makes no replicas by itself)"
        )
    return tuple(urls)


def _owner_url(env: Mapping[str, str]) -> str | None:
    url = _database_url(env, "FLOWLOG_OWNER_URL")
    if url is not None and not env.get("DATABASE_URL", "").strip():
        raise ConfigError(
            "FLOWLOG_OWNER_URL is set but DATABASE_URL is not: set DATABASE_URL to the runtime "
            "role's URL (the embedded PostgreSQL makes both roles itself)"
        )
    return url


def _hidden(url: str) -> str:
    """The URL without its password (error messages end up in logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable)"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _system_user(env: Mapping[str, str]) -> str:
    user = env.get("FLOWLOG_PG_USER", "").strip() or DEFAULT_SYSTEM_USER
    if not _SYSTEM_USER.match(user):
        raise ConfigError(f"FLOWLOG_PG_USER must be a system user name, not {user!r}")
    return user
