"""deploy/systemd/: the units pass ``systemd-analyze verify`` and keep a low exposure score
(``systemd-analyze security --offline=yes``), say what the guide says they say, and flowlog
runs under their strictest setting that could break CPython (MemoryDenyWriteExecute)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowlog.bench.harness import free_port
from tests.deploy.compose import DEPLOY
from tests.deploy.serving import READY, demo_backup_finishes, get, stop, until
from tests.deploy.tools import require_tools
from tests.helpers import cli_env

require_tools("systemd-analyze")

UNITS = DEPLOY / "systemd"
NAMES = ("flowlog-serve.service", "flowlog-worker@.service", "flowlog-migrate.service")
FLOWLOG = Path(sys.executable).parent / "flowlog"
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictSUIDSGID": "yes",
}  # fmt: skip


def _settings(unit: Path) -> dict[str, list[str]]:
    """Each key of the unit's [Service] section: its values in order (keys repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section = match.group(1)
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """The units as installed here: ExecStart is this environment's flowlog (verify checks
    that the binary exists), and the worker template has an instance."""
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/opt/flowlog/bin/flowlog", str(FLOWLOG))
        (tmp_path / name).write_text(text)
    (tmp_path / "flowlog-worker@1.service").write_text((tmp_path / NAMES[1]).read_text())
    return tmp_path


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_the_units_verify_clean(here: Path) -> None:
    units = [f"./{name}" for name in (*NAMES, "flowlog-worker@1.service")]
    verified = _analyze("verify", *units, cwd=here)
    assert (verified.returncode, verified.stderr, verified.stdout) == (0, "", "")
    # verify is no rubber stamp: a misspelt key and a missing binary are reported.
    broken = here / "broken.service"
    broken.write_text((here / NAMES[0]).read_text().replace("NoNewPrivileges=", "NoNewPrivilege=")
                      .replace(str(FLOWLOG), "/nonexistent/flowlog"))  # fmt: skip
    refused = _analyze("verify", "./broken.service", cwd=here)
    assert refused.returncode != 0
    assert "NoNewPrivilege" in refused.stderr
    assert "/nonexistent/flowlog" in refused.stderr


@pytest.mark.parametrize("name", ["flowlog-serve.service", "flowlog-worker@1.service"])
def test_the_exposure_score_stays_low(here: Path, name: str) -> None:
    """docs/operations.md reports the score (1.2, "OK" on systemd 252)."""
    analysed = _analyze("security", "--offline=yes", f"./{name}", cwd=here)
    assert analysed.returncode == 0, analysed.stderr
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", analysed.stdout)
    assert score is not None, analysed.stdout
    assert float(score.group(1)) <= 2.0, analysed.stdout


@pytest.mark.parametrize("name", NAMES)
def test_each_unit_runs_flowlog_as_its_user_hardened(name: str) -> None:
    settings = _settings(UNITS / name)
    assert settings["User"] == ["flowlog"]
    assert "/etc/flowlog/flowlog.env" in settings["EnvironmentFile"]
    assert settings["Environment"] == ["FLOWLOG_REQUIRE_DATABASE_URL=1"]
    for key, value in HARDENING.items():
        assert settings.get(key) == [value], key
    assert "@system-service" in settings["SystemCallFilter"]
    assert settings["ReadWritePaths"] == ["-/var/lib/flowlog/archive"]
    command = settings["ExecStart"][0].split()
    assert command[0] == "/opt/flowlog/bin/flowlog"
    if name != "flowlog-migrate.service":
        assert settings["Restart"] == ["on-failure"]
        assert settings["KillSignal"] == ["SIGTERM"]
        # aiohttp's 60 s for open requests, the reactor's 10 + 5 s for running nodes.
        assert int(settings["TimeoutStopSec"][0].removesuffix("s")) >= 75
        assert "/etc/flowlog/owner.env" not in settings["EnvironmentFile"]
    else:
        assert settings["Type"] == ["oneshot"]
        assert command[1:] == ["migrate"]
        assert "/etc/flowlog/owner.env" in settings["EnvironmentFile"]


MDWE = """import ctypes, os, sys
# PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN: kept across exec, as MemoryDenyWriteExecute's rule.
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(3)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _deny_write_execute(*command: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", MDWE, *command], text=True,
                            **popen)  # type: ignore[call-overload]  # fmt: skip


def test_flowlog_serves_and_runs_flows_where_memory_is_never_writable_and_executable(
    runtime_url: str,
) -> None:
    """MemoryDenyWriteExecute=yes would break a Python that makes machine code at run time
    (a JIT, some ctypes callbacks): serve and its reactor run a flow under the same rule."""
    probe = _deny_write_execute(sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, "
                                "prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)",
                                stderr=subprocess.PIPE)  # fmt: skip
    _, refused = probe.communicate(timeout=30)
    if probe.returncode == 3:
        missing = "this kernel has no PR_SET_MDWE (Linux 6.3 and later)"
        if os.environ.get("FLOWLOG_REQUIRE_DEPLOY_TOOLS"):
            pytest.fail(missing)
        pytest.skip(missing)
    assert "PermissionError" in refused  # the rule holds: writable and executable is refused

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(DATABASE_URL=runtime_url, FLOWLOG_PORT=str(port),
                  FLOWLOG_REQUIRE_DATABASE_URL="1")  # fmt: skip
    serve = _deny_write_execute(str(FLOWLOG), "serve", "--demo", env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert until(lambda: get(base + "/readyz"), serve, within=60) == (200, READY)
        demo_backup_finishes(base, serve)
    finally:
        returncode, stderr = stop(serve)
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
