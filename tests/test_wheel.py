"""The distribution as a user installs it: a wheel whose only import name is ``flowlog``,
installed into a fresh venv, serving and running the definitions of a project that has its own
``app``, ``sql`` and ``eventstore`` packages."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

import aiohttp
import pytest

from flowlog.bench.harness import free_port, until_ready

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {
    "app/__init__.py": "",
    "app/models.py": 'GREETING = "hello"\n',
    "sql/__init__.py": 'TABLE = "orders"\n',
    "eventstore/__init__.py": 'KIND = "theirs"\n',
    "app/flows.py": (
        "from flowlog import NodeDefinition, WorkflowDefinition\n"
        "from app.models import GREETING\n"
        "from eventstore import KIND\n"
        "from sql import TABLE\n\n\n"
        "async def greet(node, ctx):\n"
        '    node.record(f"{GREETING} {TABLE} {KIND}")\n\n\n'
        'GREET = NodeDefinition("greet", greet)\n'
        'DEFINITIONS = [WorkflowDefinition("own-packages", {"start": GREET})]\n'
    ),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the repository (the build writes beside its sources)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build", "dist",
        ".flowlog", "bench-results", "tests",
    ))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (built,) = work.glob("flowlog-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its dependencies are this environment's (a .pth
    line, which adds their folder without running the .pth files in it: this checkout's
    editable install stays out)."""
    folder = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return folder


def test_the_wheel_holds_one_import_name_and_its_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "flowlog",
        f"flowlog-{version('flowlog')}.dist-info",
    }
    for shipped in ("flowlog/py.typed", "flowlog/sql/migrations/0001_event_store.sql",
                    "flowlog/sql/queries/eventstore.sql", "flowlog/console/static/console.css",
                    "flowlog/console/templates/_counts.html.j2",
                    "flowlog/eventstore/store.py", "flowlog/projections/rebuild.py",
                    "flowlog/cli/__main__.py"):  # fmt: skip
        assert shipped in names


def _env(**extra: str) -> dict[str, str]:
    """This environment without flowlog's, libpq's and Python's settings (PYTHONPATH would put
    this checkout on the path), with ``extra``."""
    own = ("FLOWLOG_", "OTEL_", "PG", "PYTHON")
    kept = {k: v for k, v in os.environ.items() if not k.startswith(own) and k != "DATABASE_URL"}
    return {**kept, **extra}


def test_the_installed_command_says_its_version_and_nothing_else_is_on_the_path(
    venv: Path, tmp_path: Path
) -> None:
    done = subprocess.run([str(venv / "bin" / "flowlog"), "--version"], capture_output=True,
                          text=True, env=_env(), cwd=tmp_path, check=False)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, f"flowlog {version('flowlog')}\n")
    probe = (
        "import importlib.util, flowlog\n"
        "print(flowlog.__file__)\n"
        "print([n for n in ('app', 'sql', 'eventstore', 'projections') "
        "if importlib.util.find_spec(n)])\n"
    )
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True,
                           text=True, env=_env(), cwd=tmp_path, check=True)  # fmt: skip
    where, others = found.stdout.splitlines()
    assert where.startswith(str(venv)), where
    assert others == "[]"


@asynccontextmanager
async def _running(venv: Path, project: Path, log: Path, *args: str, env: dict[str, str]
                   ) -> AsyncIterator[asyncio.subprocess.Process]:  # fmt: skip
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            str(venv / "bin" / "flowlog"), *args, cwd=project, env=env, stdout=output,
            stderr=output,
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)


@pytest.mark.slow
async def test_a_worker_of_the_wheel_runs_a_projects_own_app_package(
    venv: Path, database_url: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    for name, text in PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    port = free_port()
    env = _env(DATABASE_URL=database_url, FLOWLOG_PORT=str(port), FLOWLOG_HOST="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    async with (
        _running(venv, project, tmp_path / "serve.log", "serve", "--no-reactor",
                 "--definitions", "app.flows", env=env) as server,
        _running(venv, project, tmp_path / "worker.log", "worker", "--definitions",
                 "app.flows", env=env) as worker,
        aiohttp.ClientSession(base) as session,
    ):  # fmt: skip
        await until_ready(base, server)
        create = {"flowName": "own-packages", "bizId": "b-1", "bizType": "t", "start": True}
        async with session.post("/api/v1/workflow/", json=create) as answer:
            created = await answer.json()
        assert answer.status == 200, created
        flow_id = created["data"]["workFlowId"]
        for _ in range(600):
            async with session.get(f"/api/v1/workflow/{flow_id}") as answer:
                detail = (await answer.json())["data"]
            if detail["info"]["status"] != "Processing":
                break
            assert worker.returncode is None, (tmp_path / "worker.log").read_text()
            await asyncio.sleep(0.1)
    assert detail["info"]["status"] == "Finished", (tmp_path / "worker.log").read_text()
    assert [node["result"] for node in detail["nodes"]] == ["hello orders theirs\n"]
