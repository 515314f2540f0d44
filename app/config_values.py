"""What the text of an environment variable may be, for the settings model (app/config.py).

Each annotated type here turns a variable's text into its value, or refuses it with a
ValueError whose words follow the variable's name (``FLOWLOG_PORT`` + ``must be a whole
number, not 'abc'``): the model names the variable, as pydantic knows which it was reading.
Bounds are not here but on the model's fields, where ``--help`` and the README read them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BeforeValidator

from flowlog.access.oidc_settings import OidcSettings
from flowlog.archive.policy import parse_definitions, parse_duration
from flowlog.pgserver import DEFAULT_SYSTEM_USER
from flowlog.webhooks.allow import AllowList


def _whole_number(text: Any) -> Any:
    if not isinstance(text, str):
        return text  # a default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be a whole number, not {text!r}") from None


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
WholeSeconds = Annotated[float, BeforeValidator(_whole_number)]
"""A whole number of seconds in the environment, a float to the code that waits on it."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["json", "text"]


def one_of(choices: Any) -> BeforeValidator:
    """One of a Literal's values, in any case (``debug``, ``JSON``); blank: unset (None)."""
    allowed: tuple[str, ...] = get_args(choices)

    def choose(text: Any) -> Any:
        value = text.strip() if isinstance(text, str) else text
        if not value:
            return None
        if value.upper() in allowed:
            return value.upper()
        if value.lower() in allowed:
            return value.lower()
        raise ValueError(f"must be one of {', '.join(allowed)}, not {value!r}")

    return BeforeValidator(choose)


_DATABASE_SCHEMES = frozenset({"postgresql", "postgres"})
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def database_url(text: str | None) -> str | None:
    """A libpq URL, checked here so that a typo is named at once, not met as an outage."""
    url = (text or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}): {hidden(url)!r}") from None
    if parts.scheme not in _DATABASE_SCHEMES:
        raise ValueError(
            f"must be a postgresql:// URL, not {hidden(url)!r} "
            "(for example postgresql://flowlog@db:5432/flowlog)"
        )
    if not (parts.hostname or "host=" in parts.query):
        raise ValueError(f"names no host: {hidden(url)!r}")
    return url


def _database_urls(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    # A comma also separates the hosts of one libpq URL (host1,host2): only a comma followed
    # by a new URL's scheme starts another replica.
    return tuple(url for part in _NEXT_URL.split(text) if (url := database_url(part)))


DatabaseUrl = Annotated[str | None, BeforeValidator(database_url)]
DatabaseUrls = Annotated[tuple[str, ...], BeforeValidator(_database_urls)]
"""libpq URLs separated by commas."""


def hidden(url: str) -> str:
    """The URL without its password (error messages end up in logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable)"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _names(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    return tuple(name.strip() for name in text.split(",") if name.strip())


Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
"""Names separated by commas (blanks between them are dropped)."""

_SYSTEM_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _system_user(text: Any) -> Any:
    user = text.strip() if isinstance(text, str) else text
    if not user:
        return DEFAULT_SYSTEM_USER
    if not _SYSTEM_USER.match(user):
        raise ValueError(f"must be a system user name, not {user!r}")
    return user


SystemUser = Annotated[str, BeforeValidator(_system_user)]


def _checked(parse: Callable[[str], object]) -> Callable[[Any], Any]:
    """The text as written (stripped; blank: unset), once ``parse`` takes it: the retention
    is built from both of its variables together (Settings.retention)."""

    def check(text: Any) -> Any:
        value = text.strip() if isinstance(text, str) else text
        if not value:
            return None
        parse(value)  # BadRetention, a ValueError, says what is wrong after a colon
        return value

    return check


RetentionText = Annotated[str | None, BeforeValidator(_checked(parse_duration))]
RetentionsText = Annotated[str | None, BeforeValidator(_checked(parse_definitions))]


def _oidc_map(text: Any) -> Any:
    value = text.strip() if isinstance(text, str) else text
    if not value:
        return None
    try:
        OidcSettings.parse_mapping(value)
    except ValueError as exc:
        raise ValueError(f"is not a usable mapping: {exc}") from None
    return value


OidcMapText = Annotated[str | None, BeforeValidator(_oidc_map)]


def _webhook_allow(text: Any) -> Any:
    value = text.strip() if isinstance(text, str) else text
    if not value:
        return None
    try:
        AllowList.parse(value)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("FLOWLOG_WEBHOOK_ALLOW: ")) from None
    return value


WebhookAllowText = Annotated[str | None, BeforeValidator(_webhook_allow)]
"""``value=tenant:role`` entries separated by commas (flowlog.access.oidc), as written."""


def _public_url(text: Any) -> Any:
    value = text.strip() if isinstance(text, str) else text
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
        or any(ch.isspace() or not ch.isprintable() for ch in value)
    ):
        raise ValueError(
            f"must be an http(s) URL without query, e.g. https://flowlog.example.com, not {value!r}"
        )
    return value.rstrip("/")


PublicUrl = Annotated[str | None, BeforeValidator(_public_url)]
"""The base URL people reach the console at (no trailing slash)."""
