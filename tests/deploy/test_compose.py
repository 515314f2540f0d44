"""deploy/compose.yaml: PostgreSQL 17, a one-shot migrate as the owner role, serve and two
workers as the runtime role, each with a healthcheck; no secret but the documented dev
defaults; and its init script makes the roles that `flowlog migrate` then grants."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from flowlog.pgserver import EmbeddedPostgres, bundled_bin_dir
from tests.deploy.compose import DEPLOY, defaults, interpolate, load
from tests.helpers import cli_env, run_flowlog

COMPOSE = DEPLOY / "compose.yaml"
INIT = DEPLOY / "compose" / "initdb" / "10-flowlog-roles.sh"
OPERATIONS = DEPLOY.parent / "docs" / "operations.md"
FLOWLOG_SERVICES = ("migrate", "serve", "worker")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = load(COMPOSE)["services"]
    return found


def _url(service: dict[str, Any], name: str) -> Any:
    return urlsplit(interpolate(service["environment"][name], {}))


def test_the_services_and_what_they_run(services: dict[str, Any]) -> None:
    assert set(services) == {"db", *FLOWLOG_SERVICES}
    assert services["db"]["image"] == "postgres:17"
    assert [services[name]["command"] for name in FLOWLOG_SERVICES] == [
        ["migrate"], ["serve"], ["worker"]
    ]  # fmt: skip
    assert services["worker"]["deploy"]["replicas"] == 2
    images = {services[name]["image"] for name in FLOWLOG_SERVICES}
    assert len(images) == 1
    for name in FLOWLOG_SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()


def test_migrate_runs_once_as_the_owner_and_the_rest_as_the_runtime_role(
    services: dict[str, Any],
) -> None:
    migrate = services["migrate"]
    assert _url(migrate, "FLOWLOG_OWNER_URL").username == "flowlog_owner"
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in FLOWLOG_SERVICES:
        assert _url(services[name], "DATABASE_URL").username == "flowlog"
        assert _url(services[name], "DATABASE_URL").hostname == "db"
    for name in ("serve", "worker"):
        assert "FLOWLOG_OWNER_URL" not in services[name]["environment"]
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["stop_signal"] == "SIGTERM"


def test_each_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    assert "pg_isready" in services["db"]["healthcheck"]["test"]
    serve = " ".join(services["serve"]["healthcheck"]["test"])
    assert "/readyz" in serve
    worker = " ".join(services["worker"]["healthcheck"]["test"])
    assert "DATABASE_URL" in worker  # no HTTP port: it checks its database
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_no_secret_is_written_in_but_the_documented_dev_defaults() -> None:
    text = COMPOSE.read_text()
    passwords = {name: value for name, value in defaults(text).items() if "PASSWORD" in name}
    assert set(passwords) == {"POSTGRES_PASSWORD", "FLOWLOG_OWNER_PASSWORD", "FLOWLOG_PASSWORD"}
    guide = OPERATIONS.read_text()
    for name, value in passwords.items():
        assert value.startswith("dev-"), name
        assert f"`{name}`" in guide, f"{name} is not documented"
        assert value in guide, f"{name}'s default is not documented"
    # A URL's password is always a variable, never written in.
    for url in re.findall(r"postgres(?:ql)?://\S+", text):
        userinfo = url.split("@")[0].split("://")[1]
        assert ":" not in userinfo or userinfo.split(":", 1)[1].startswith("${"), url
    for service in load(COMPOSE)["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), key


@pytest.fixture
def postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of its own: the script makes roles with fixed names, which a shared test
    server may hold already."""
    folder = Path(tempfile.mkdtemp(prefix="flowlog-compose-"))
    try:
        with EmbeddedPostgres(folder / "data") as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_init_script_makes_the_roles_migrate_grants(
    postgres: EmbeddedPostgres, services: dict[str, Any]
) -> None:
    env = {**os.environ, "POSTGRES_USER": "postgres", "PGHOST": str(postgres.data_dir),
           "PGPORT": str(postgres.port), "FLOWLOG_OWNER_PASSWORD": "o'wner pass",
           "FLOWLOG_PASSWORD": "run'time",
           "PATH": f"{bundled_bin_dir()}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    made = subprocess.run(["sh", str(INIT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    # The roles and database the compose file's URLs name, through the server's socket.
    owner = _url(services["migrate"], "FLOWLOG_OWNER_URL").username
    runtime = _url(services["serve"], "DATABASE_URL").username
    urls = {"FLOWLOG_OWNER_URL": postgres.dsn("flowlog", user=owner),
            "DATABASE_URL": postgres.dsn("flowlog", user=runtime)}  # fmt: skip
    migrated = run_flowlog("migrate", env=cli_env(**urls))
    assert migrated.returncode == 0, migrated.stderr
    facts = asyncio.run(_roles(postgres.dsn("flowlog"), owner, runtime))
    assert facts == {"database_owner": owner, "events_owner": owner, "runtime_inserts": True,
                     "runtime_deletes": False, "runtime_super": False,
                     "passwords": 2}  # fmt: skip


async def _roles(dsn: str, owner: str, runtime: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database
                        WHERE datname = current_database()) AS database_owner,
                      (SELECT tableowner FROM pg_tables WHERE tablename = 'events') AS events_owner,
                      has_column_privilege($2, 'events', 'data', 'INSERT') AS runtime_inserts,
                      has_table_privilege($2, 'events', 'DELETE') AS runtime_deletes,
                      (SELECT rolsuper FROM pg_roles WHERE rolname = $2) AS runtime_super,
                      -- the passwords went in as given, quotes and all (psql's variables)
                      (SELECT count(*) FROM pg_authid WHERE rolname IN ($1, $2)
                         AND rolpassword IS NOT NULL) AS passwords""",
            owner, runtime,
        )  # fmt: skip
        return dict(row)
    finally:
        await conn.close()
