"""flowlog's settings: one field per environment variable (its name the field's alias), with
its type, default, bounds and what it does, and what the command line sets on top (flags
override the variables). app/config_help.py reads the variables off it for ``flowlog --help``
and the README's table; app/config_values.py says what each variable's text may be."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, JsonValue, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flowlog.access.oidc_settings import OidcSettings
from flowlog.archive.policy import (
    ArchiveSettings,
    BadRetention,
    Retention,
    parse_definitions,
    parse_duration,
)
from flowlog.config_values import (
    DatabaseUrl,
    DatabaseUrls,
    LogFormat,
    LogLevel,
    Names,
    OidcMapText,
    PublicUrl,
    RetentionsText,
    RetentionText,
    SystemUser,
    WebhookAllowText,
    WholeNumber,
    WholeSeconds,
    one_of,
)
from flowlog.pgserver import DEFAULT_SYSTEM_USER
from flowlog.replicas.settings import ReadSettings
from flowlog.webhooks.allow import AllowList
from flowlog.webhooks.settings import WebhookSettings
from flowlog.workflow.reactor_settings import ReactorSettings


class ConfigError(ValueError):
    """An environment variable has a value flowlog cannot use."""


def default_data_dir(euid: int, home: Path) -> Path:
    """Where the embedded PostgreSQL keeps its data when FLOWLOG_DATA_DIR is unset.

    Root gets a system location: root's home is usually closed to the server's own user.
    """
    if euid == 0:
        return Path("/var/lib/flowlog/pgdata")
    return home / ".local" / "share" / "flowlog" / "pgdata"


Topic = Literal[
    "database", "embedded", "serve", "sign-on", "reactor", "webhooks", "archive", "logs"
]
"""Where ``--help`` lists a variable (app/config_help.py orders the topics and notes them)."""


def _about(topic: Topic, shown: str | None = None) -> dict[str, JsonValue]:
    """A field's place in ``--help`` (``topic``), and its default as the README says it when
    that is not its value's text (``shown``)."""
    return {"topic": topic, "shown": shown}


class Settings(BaseSettings):
    """The fields are checked in their order here: the first that is wrong is the one named."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: DatabaseUrl = Field(
        None, alias="DATABASE_URL",
        json_schema_extra=_about("database", "unset: embedded PostgreSQL"),
        description="libpq URL of flowlog's database as the **runtime role** that serves, "
        "e.g. `postgresql://flowlog@db:5432/flowlog`",
    )  # fmt: skip
    owner_url: DatabaseUrl = Field(
        None, alias="FLOWLOG_OWNER_URL",
        json_schema_extra=_about(
            "database", "unset: `DATABASE_URL`'s role does the owner's work too"
        ),
        description="libpq URL of the same database as the **owner role**, which migrates, "
        "grants the runtime role, rebuilds and imports, e.g. "
        "`postgresql://flowlog_owner@db:5432/flowlog` (see below)",
    )  # fmt: skip
    require_database_url: bool = Field(
        False, alias="FLOWLOG_REQUIRE_DATABASE_URL",
        json_schema_extra=_about("database", "`0`"),
        description="`1`: the commands that need a database refuse to run without "
        "`DATABASE_URL` rather than start the embedded PostgreSQL (the container image sets it)",
    )  # fmt: skip
    host: str = Field(
        "127.0.0.1", alias="FLOWLOG_HOST", json_schema_extra=_about("serve"),
        description="address `flowlog serve` listens on (`--host`)",
    )  # fmt: skip
    port: WholeNumber = Field(
        8080, alias="FLOWLOG_PORT", ge=1, le=65535, json_schema_extra=_about("serve"),
        description="port `flowlog serve` listens on (`--port`)",
    )  # fmt: skip
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(os.geteuid(), Path.home()),
        alias="FLOWLOG_DATA_DIR",
        json_schema_extra=_about(
            "embedded", "`~/.local/share/flowlog/pgdata` (root: `/var/lib/flowlog/pgdata`)"
        ),
        description="data directory of the embedded PostgreSQL",
    )  # fmt: skip
    pg_system_user: SystemUser = Field(
        DEFAULT_SYSTEM_USER, alias="FLOWLOG_PG_USER", json_schema_extra=_about("embedded"),
        description="system user that runs the embedded PostgreSQL when flowlog runs as root "
        "(created if missing)",
    )  # fmt: skip
    pool_size: WholeNumber = Field(
        10, alias="FLOWLOG_POOL_SIZE", ge=1, le=1000, json_schema_extra=_about("database"),
        description="connections in the pool of each process",
    )  # fmt: skip
    log_level: Annotated[LogLevel | None, one_of(LogLevel)] = Field(
        None, alias="FLOWLOG_LOG_LEVEL",
        json_schema_extra=_about("logs", "`INFO` for `serve` and `worker`, `WARNING` for the "
                                 "other commands (their output is on stdout)"),
        description="`DEBUG` (each node run), `INFO`, `WARNING`, `ERROR`",
    )  # fmt: skip
    log_format: Annotated[LogFormat | None, one_of(LogFormat)] = Field(
        None, alias="FLOWLOG_LOG_FORMAT",
        json_schema_extra=_about("logs", "`text` on a terminal, else `json`"),
        description="`json` (one object a line, on stderr) or `text` (a line with the same "
        "fields)",
    )  # fmt: skip
    tokens: str = Field(
        "", alias="FLOWLOG_TOKENS", json_schema_extra=_about("serve", "none: open"),
        description="bearer tokens, `name:token:tenant` comma-separated, each an admin of its "
        "tenant (API keys in the database, `flowlog keys`, do the same with roles: "
        "docs/access.md); with any token or key, each request needs one (the console asks for "
        "one at log-in) and sees only its tenant's flows, schedules and definitions (those "
        "registered over REST belong to the tenant that registered them; those from code are "
        "everyone's)",
    )  # fmt: skip
    oidc_issuer: str | None = Field(
        None, alias="FLOWLOG_OIDC_ISSUER",
        json_schema_extra=_about("sign-on", "none: no single sign-on"),
        description="the identity provider's issuer URL, exactly as its ID tokens spell it "
        "(`https://`; `http://` only on this host); with it, the console offers to log in "
        "there (docs/access.md) and needs the three below",
    )  # fmt: skip
    oidc_client_id: str | None = Field(
        None, alias="FLOWLOG_OIDC_CLIENT_ID", json_schema_extra=_about("sign-on", "none"),
        description="the client registered at the provider for this service",
    )  # fmt: skip
    oidc_client_secret: str | None = Field(
        None, alias="FLOWLOG_OIDC_CLIENT_SECRET", repr=False,
        json_schema_extra=_about("sign-on", "none"),
        description="that client's secret",
    )  # fmt: skip
    oidc_map: OidcMapText = Field(
        None, alias="FLOWLOG_OIDC_MAP", json_schema_extra=_about("sign-on", "none"),
        description="who gets which tenant and role: `value=tenant:role` entries, "
        "comma-separated, each value one that the claim `FLOWLOG_OIDC_CLAIM` may hold "
        "(`ops=acme:operator,platform=*:superadmin`; the tenant `*` only with `superadmin`); "
        "the highest role matched wins",
    )  # fmt: skip
    oidc_claim: str = Field(
        "groups", alias="FLOWLOG_OIDC_CLAIM", json_schema_extra=_about("sign-on"),
        description="the ID token's claim whose values `FLOWLOG_OIDC_MAP` maps",
    )  # fmt: skip
    oidc_scopes: str = Field(
        "openid email profile", alias="FLOWLOG_OIDC_SCOPES",
        json_schema_extra=_about("sign-on"),
        description="the scopes asked of the provider (Dex: add `groups`)",
    )  # fmt: skip
    public_url: PublicUrl = Field(
        None, alias="FLOWLOG_PUBLIC_URL",
        json_schema_extra=_about("sign-on", "unset: the request's scheme and `Host`"),
        description="the console's address as people reach it (behind a proxy: its "
        "`https://` URL); the redirect URI to register at the provider is it followed by "
        "`/login/oidc/callback`",
    )  # fmt: skip
    definitions: Names = Field(
        (), alias="FLOWLOG_DEFINITIONS", json_schema_extra=_about("reactor"),
        description="comma-separated modules that define workflows (`--definitions`), found as "
        "`python -m` finds them (the current directory first)",
    )  # fmt: skip
    concurrency: WholeNumber | None = Field(
        None, alias="FLOWLOG_CONCURRENCY", ge=1, le=10_000,
        json_schema_extra=_about("reactor", "unset: adaptive"),
        description="a fixed number of flows the reactor of one process drives at once "
        "(`--concurrency`); unset, the number adapts to how long transitions wait, up to "
        "`FLOWLOG_MAX_CONCURRENCY` (docs/workflows.md); `flowlog worker --remote`: tasks run "
        "at once (unset: 32)",
    )  # fmt: skip
    max_concurrency: WholeNumber = Field(
        1000, alias="FLOWLOG_MAX_CONCURRENCY", ge=1, le=10_000,
        json_schema_extra=_about("reactor"),
        description="the most flows the adaptive limit lets the reactor of one process drive "
        "at once (`--max-concurrency`)",
    )  # fmt: skip
    token: str | None = Field(
        None, alias="FLOWLOG_TOKEN", repr=False, json_schema_extra=_about("reactor", "none"),
        description="the bearer token `flowlog worker --remote` presents to the server "
        "(`--token`)",
    )  # fmt: skip
    lease_seconds: WholeSeconds = Field(
        30.0, alias="FLOWLOG_LEASE_SECONDS", ge=1, le=86_400,
        json_schema_extra=_about("reactor"),
        description="how long a claim on a flow lasts without heartbeat (a dead worker's flows "
        "wait this long)",
    )  # fmt: skip
    idempotency_hours: WholeNumber = Field(
        24, alias="FLOWLOG_IDEMPOTENCY_HOURS", ge=1, le=24 * 365,
        json_schema_extra=_about("serve"),
        description="how long an `Idempotency-Key` is remembered (docs/api.md)",
    )  # fmt: skip
    webhook_allow: WebhookAllowText = Field(
        None, alias="FLOWLOG_WEBHOOK_ALLOW",
        json_schema_extra=_about("webhooks", "none: public addresses only"),
        description="addresses, networks (CIDR) and host names that webhooks may be sent to "
        "although they are not public (`127.0.0.1,10.0.0.0/8,hooks.internal`): without it, "
        "loopback, private and link-local addresses are refused",
    )  # fmt: skip
    webhook_retry_hours: WholeNumber = Field(
        24, alias="FLOWLOG_WEBHOOK_RETRY_HOURS", ge=1, le=24 * 30,
        json_schema_extra=_about("webhooks"),
        description="how long a failing webhook delivery is retried (exponential backoff with "
        "jitter) before it is dead-lettered",
    )  # fmt: skip
    read_database_urls: DatabaseUrls = Field(
        (), alias="FLOWLOG_READ_DATABASE_URL",
        json_schema_extra=_about("database", "none: reads on the primary"),
        description="streaming replicas' URLs, comma-separated: lists, details, history, the "
        "console and the event streams read there, each client still reading its own writes "
        "(docs/replicas.md)",
    )  # fmt: skip
    replica_max_lag: WholeSeconds = Field(
        10.0, alias="FLOWLOG_REPLICA_MAX_LAG", ge=1, le=86_400,
        json_schema_extra=_about("database"),
        description="seconds behind the primary past which a replica is skipped",
    )  # fmt: skip
    read_wait_ms: WholeNumber = Field(
        1000, alias="FLOWLOG_READ_WAIT_MS", ge=0, le=60_000,
        json_schema_extra=_about("database"),
        description="how long a read presenting a write's `Flowlog-Position` waits for a "
        "replica to replay it before the primary answers",
    )  # fmt: skip
    retention_default: RetentionText = Field(
        None, alias="FLOWLOG_RETENTION", json_schema_extra=_about("archive"),
        description="how long ended flows stay in the hot log after their last change (`30d`, "
        "`12h`, `90m`, `45s`, `off`); past it they are archived. The owner's `flowlog migrate` "
        "writes it into the database, whose retention applies (off until written; "
        "docs/archival.md)",
    )  # fmt: skip
    retention_definitions: RetentionsText = Field(
        None, alias="FLOWLOG_RETENTION_DEFINITIONS", json_schema_extra=_about("archive"),
        description="per definition: `backup=7d,audit=off`; written with it",
    )  # fmt: skip
    archive_dir: Path | None = Field(
        None, alias="FLOWLOG_ARCHIVE_DIR",
        json_schema_extra=_about("archive", "none (required with a retention)"),
        description="where archive files go: shared by every process that archives, and the "
        "archived flows' only copy",
    )  # fmt: skip
    archive_interval: WholeSeconds = Field(
        600.0, alias="FLOWLOG_ARCHIVE_INTERVAL", ge=0, le=86_400 * 7,
        json_schema_extra=_about("archive"),
        description="seconds between the archive runs of `serve` and `worker` (one process at "
        "a time; `0`: only `flowlog archive`)",
    )  # fmt: skip

    # What the command line sets (serve and worker), no variable's.
    run_reactor: bool = True
    demo: bool = False
    """``serve --demo``: the demo definitions, and demo flows to look at (app/demo.py)."""

    @model_validator(mode="after")
    def _together(self) -> Self:
        """What one variable needs of another, once each is known to be good."""
        if self.owner_url is not None and self.database_url is None:
            raise ConfigError(
                "FLOWLOG_OWNER_URL is set but DATABASE_URL is not: set DATABASE_URL to the "
                "runtime role's URL (the embedded PostgreSQL makes both roles itself)"
            )
        if self.read_database_urls and self.database_url is None:
            raise ConfigError(
                "FLOWLOG_READ_DATABASE_URL is set but DATABASE_URL is not: replicas follow a "
                "primary that flowlog reaches by DATABASE_URL (the embedded PostgreSQL makes no "
                "replicas by itself)"
            )
        retention = self.retention
        if retention is not None and retention.enabled and not str(self.archive_dir or "").strip():
            raise ConfigError(
                "FLOWLOG_RETENTION is on but FLOWLOG_ARCHIVE_DIR is not set: archived flows "
                "need a directory to go to (shared by every process that archives)"
            )
        self._oidc_checked()
        return self

    def _oidc_checked(self) -> None:
        given = {"FLOWLOG_OIDC_CLIENT_ID": self.oidc_client_id,
                 "FLOWLOG_OIDC_CLIENT_SECRET": self.oidc_client_secret,
                 "FLOWLOG_OIDC_MAP": self.oidc_map}  # fmt: skip
        if not self.oidc_issuer:
            if stray := [name for name, value in given.items() if value]:
                raise ConfigError(
                    f"{_listed(stray)} set but FLOWLOG_OIDC_ISSUER is not: single sign-on "
                    "needs the identity provider's issuer URL"
                )
            return
        if missing := [name for name, value in given.items() if not value]:
            raise ConfigError(
                f"FLOWLOG_OIDC_ISSUER is set but {_listed(missing, 'not')}: single sign-on "
                "needs the client registered at the provider, its secret, and who gets which "
                "tenant and role (docs/access.md)"
            )
        try:
            self.oidc  # noqa: B018 - building the settings checks them
        except ValueError as exc:
            named = next(
                (name for word, name in _OIDC_WORDS if word in str(exc)), "FLOWLOG_OIDC_ISSUER"
            )
            raise ConfigError(f"{named}: {exc}") from None

    @property
    def oidc(self) -> OidcSettings | None:
        """The single sign-on's settings (None: the console has none)."""
        if not self.oidc_issuer:
            return None
        return OidcSettings(
            issuer=self.oidc_issuer, client_id=self.oidc_client_id or "",
            client_secret=self.oidc_client_secret or "",
            mapping=OidcSettings.parse_mapping(self.oidc_map or ""),
            claim=self.oidc_claim.strip(), scopes=" ".join(self.oidc_scopes.split()),
        )  # fmt: skip

    @property
    def webhooks(self) -> WebhookSettings:
        """How this process delivers webhooks (docs/webhooks.md)."""
        return WebhookSettings(
            allow=AllowList.parse(self.webhook_allow),
            retry_seconds=self.webhook_retry_hours * 3600.0,
        )

    @property
    def read_wait(self) -> float:
        """Seconds a read that presents a commit position waits for a replica."""
        return self.read_wait_ms / 1000

    @property
    def retention(self) -> Retention | None:
        """How long ended flows stay in the hot log, as the environment says it (None: it
        says nothing). Only a seed: the owner's migrate writes it into the database, whose
        retention is the one that applies (docs/archival.md)."""
        if self.retention_default is None and self.retention_definitions is None:
            return None
        keep = parse_duration(self.retention_default) if self.retention_default else None
        return Retention(keep, parse_definitions(self.retention_definitions or ""))

    @property
    def archive(self) -> ArchiveSettings | None:
        """How this process archives: where to (each run applies the database's retention,
        off until the owner sets one); None without a directory."""
        if self.archive_dir is None:
            return None
        return ArchiveSettings(self.archive_dir)

    @property
    def reactor(self) -> ReactorSettings:
        return ReactorSettings(
            concurrency=self.concurrency, max_concurrency=self.max_concurrency,
            lease_seconds=self.lease_seconds,
        )  # fmt: skip

    @property
    def reads(self) -> ReadSettings:
        return ReadSettings(
            urls=self.read_database_urls, max_lag=self.replica_max_lag, wait=self.read_wait,
            pool_size=self.pool_size,
        )  # fmt: skip

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what from_env passes: the process's environment, or a test's mapping as its
        # whole environment (os.environ is not read behind its back); no .env file, no
        # secrets directory. pydantic-settings' own environment source is not used for that
        # reason, and because it reads a tuple's variable as JSON, not comma-separated.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings ``env`` gives (by default the process's environment), or ConfigError
        naming the first variable that is wrong."""
        env = os.environ if env is None else env
        given = {name: env[name] for name in FIELDS if _said(env, name)}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise ConfigError(_problem(exc.errors()[0])) from None


_OIDC_WORDS = (("scopes", "FLOWLOG_OIDC_SCOPES"), ("claim", "FLOWLOG_OIDC_CLAIM"),
               ("client id", "FLOWLOG_OIDC_CLIENT_ID"))  # fmt: skip
"""Which variable an OidcSettings error is about, by its words (else the issuer)."""


def _listed(names: list[str], after: str = "") -> str:
    """``A is`` / ``A and B are``, then ``after``."""
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
    words = listed + (" is" if len(names) == 1 else " are")
    return f"{words} {after}" if after else words


def _said(env: Mapping[str, str], name: str) -> bool:
    """Whether ``env`` sets the variable: an empty one is unset, but for FLOWLOG_HOST, an
    empty host that ``flowlog serve`` refuses (as it always has)."""
    return bool(env.get(name)) or (name == "FLOWLOG_HOST" and name in env)


def _problem(error: ErrorDetails) -> str:
    """The sentence a person reads for pydantic's error: the variable's name first."""
    name = str(error["loc"][0]) if error["loc"] else ""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):  # already says which variables
        return str(cause)
    if isinstance(cause, BadRetention):
        return f"{name}: {cause}"
    if isinstance(cause, ValueError):
        return f"{name} {cause}"
    if error["type"] in {"greater_than_equal", "less_than_equal"}:
        low, high = _bounds(FIELDS[name])
        return f"{name} must be between {low} and {high}, not {error['input']}"
    return f"{name}: {error['msg']}"


def _bounds(field: FieldInfo) -> tuple[Any, Any]:
    """The field's ``ge`` and ``le`` (pydantic keeps them as annotated-types markers)."""
    low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    return low, next(m.le for m in field.metadata if hasattr(m, "le"))


FIELDS = {field.alias: field for field in Settings.model_fields.values() if field.alias}
"""The settings' fields by their variable's name, in the model's order."""
