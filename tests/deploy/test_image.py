"""The container image (Containerfile at the repository's root) built here and its entrypoint
run against the test PostgreSQL, as tests/deploy/image.py says how: it serves as its own user,
a flow finishes, its HEALTHCHECK passes, and without DATABASE_URL it says one is required."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowlog.bench.harness import free_port
from tests.deploy.image import Image, build_image, entrypoint, in_image, mounted
from tests.deploy.serving import READY, demo_backup_finishes, get, stop, until
from tests.deploy.tools import require_tools

require_tools("podman", "mmdebstrap", "unshare", "chroot", root=True)

# A cold cache bootstraps Debian and installs the wheel's dependencies: minutes, once a week.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UID = 10001


@pytest.fixture(scope="module")
def image() -> Image:
    return build_image()


@pytest.fixture
def root(image: Image) -> Iterator[Path]:
    with mounted(image) as path:
        yield path


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_the_image_is_built_as_documented(image: Image) -> None:
    config = image.config
    assert (config["Entrypoint"], config["Cmd"]) == (["flowlog"], ["serve"])
    assert config["User"] == f"{UID}:{UID}"
    assert "8080/tcp" in config["ExposedPorts"]
    env = image.env
    assert env["FLOWLOG_HOST"] == "0.0.0.0"
    assert env["FLOWLOG_REQUIRE_DATABASE_URL"] == "1"
    assert "DATABASE_URL" not in env
    healthcheck = image.info["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD"
    assert "/healthz" in healthcheck[-1]


def test_the_runtime_holds_the_venv_not_the_build(root: Path) -> None:
    """The second stage: the installed venv, no sources, wheels or build venv, and nothing of
    the checkout that .dockerignore keeps out."""
    assert (root / "opt/flowlog/bin/flowlog").is_file()
    for left_out in ("src", "wheels", "opt/build"):
        assert not (root / left_out).exists(), left_out
    installed = root / "opt/flowlog/lib"
    assert not list(installed.glob("python3*/site-packages/tests"))
    assert not list(installed.glob("python3*/site-packages/flowlog/**/.venv"))
    (passwd,) = [line for line in (root / "etc/passwd").read_text().splitlines()
                 if line.startswith("flowlog:")]  # fmt: skip
    assert passwd.split(":")[2:4] == [str(UID), str(UID)]
    assert passwd.endswith("nologin")


def test_the_entrypoint_serves_as_its_own_user_and_runs_flows(
    image: Image, root: Path, database_url: str, runtime_url: str
) -> None:
    """The production shape: the owner migrates, the runtime role serves (the chroot shares
    the host's network, where the test PostgreSQL listens on 127.0.0.1). The mounted image is
    read-only, as Kubernetes' readOnlyRootFilesystem makes it: flowlog writes nothing there."""
    assert os.statvfs(root).f_flag & os.ST_RDONLY
    migrate = entrypoint(
        image, root, ["migrate"], {"DATABASE_URL": runtime_url, "FLOWLOG_OWNER_URL": database_url},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, err
    assert "up to date" in out

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = entrypoint(
        image, root, ["serve", "--demo"], {"DATABASE_URL": runtime_url, "FLOWLOG_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert until(lambda: get(base + "/readyz"), serve, within=120) == (200, READY)

        status = _status(serve.pid)
        assert status["Name"] == "flowlog"
        assert status["Uid"].split() == [str(UID)] * 4
        assert status["Gid"].split() == [str(UID)] * 4
        assert set(status["Groups"].split()) <= {str(UID)}  # not root's group
        assert Path(f"/proc/{serve.pid}/root").resolve() == root.resolve()

        demo_backup_finishes(base, serve)

        # The image's HEALTHCHECK, run in the image as its runtime would run it.
        probe = in_image(image, root, image.info["Healthcheck"]["Test"][1:],
                         {"FLOWLOG_PORT": str(port)}, stderr=subprocess.PIPE)  # fmt: skip
        _, probe_err = probe.communicate(timeout=30)
        assert probe.returncode == 0, probe_err
    finally:
        returncode, stderr = stop(serve)
    assert returncode == 0, stderr
    assert "Traceback" not in stderr


def test_without_database_url_the_image_says_it_is_required(image: Image, root: Path) -> None:
    """No embedded PostgreSQL in the image: its data would live in the container's writable
    layer and vanish with it."""
    for args in (None, ["worker"], ["migrate"]):
        process = entrypoint(image, root, args, {}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
        out, err = process.communicate(timeout=60)
        assert process.returncode == 2, (args, err)
        assert "DATABASE_URL is required" in err
        assert "Traceback" not in err
        assert out == ""
    assert not (root / "srv/flowlog/.local").exists()  # no embedded server's data directory
