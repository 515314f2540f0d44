"""flowlog's image as this machine can make and enter it (../shared/notes/containers.md): a
Debian base made with mmdebstrap (no registry is reachable), the Containerfile built on it by
``podman build --isolation=chroot``, and its entrypoint run by chroot into the mounted image,
on the host's network (containers cannot run here: crun cannot set rlimits or cgroups)."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path("/var/tmp")
LOCK = CACHE / "flowlog-image.lock"
SUITE = "trixie"
PACKAGES = "python3,python3-venv,ca-certificates"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
"""This machine's own certificate authorities (an intercepting proxy's): copied into the local
base so that the build's pip trusts what the host trusts. Not in the Containerfile: a public
base needs none."""


@dataclass(frozen=True)
class Image:
    """A built image: its id (tags move when another checkout builds) and its configuration."""

    id: str
    info: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.info["Config"]
        return config

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [])


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One builder at a time on this machine (xdist workers, another checkout's run)."""
    with LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _base_key() -> str:
    """What the base is made of, and the week: a new week bootstraps Debian's updates."""
    digest = hashlib.sha256(f"{SUITE} {PACKAGES}".encode())
    for certificate in sorted(LOCAL_CAS.glob("*.crt")):
        digest.update(certificate.read_bytes())
    year, week, _ = datetime.date.today().isocalendar()
    return f"{year}w{week:02d}-{digest.hexdigest()[:12]}"


def _run(args: Sequence[str], timeout: float) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:3])} failed:\n{done.stdout[-4000:]}"
                             f"{done.stderr[-4000:]}")  # fmt: skip
    return done.stdout


def base_image() -> str:
    """The local base's name, made if missing (kept as a tar in /var/tmp, by week)."""
    key = _base_key()
    name = f"localhost/flowlog-base:{key}"
    if subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0:
        return name
    tar = CACHE / f"flowlog-image-base-{key}.tar"
    if not tar.exists():
        for old in CACHE.glob("flowlog-image-base-*.tar"):
            old.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            made = Path(work) / "base.tar"
            hooks = []
            if any(LOCAL_CAS.glob("*.crt")):
                hooks = [f"--customize-hook=copy-in {LOCAL_CAS} /usr/local/share",
                         '--customize-hook=chroot "$1" update-ca-certificates']  # fmt: skip
            _run(["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", *hooks, SUITE,
                  str(made)], timeout=600)  # fmt: skip
            made.rename(tar)
    # pip reads certifi's bundle unless told: the system's, with this machine's authorities.
    _run(["podman", "import", "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
          str(tar), name], timeout=300)  # fmt: skip
    return name


def build_image() -> Image:
    """The repository's Containerfile built on the local base (podman's layer cache makes a
    rebuild of unchanged sources a matter of seconds)."""
    with _locked():
        base = base_image()
        with tempfile.TemporaryDirectory() as work:
            iidfile = Path(work) / "iid"
            _run(["podman", "build", "--isolation=chroot", "--format=docker", "--layers",
                  f"--build-arg=BASE={base}", f"--iidfile={iidfile}",
                  "-t", "localhost/flowlog:test", "-f", str(ROOT / "Containerfile"), str(ROOT)],
                 timeout=900)  # fmt: skip
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
    (info,) = orjson.loads(_run(["podman", "image", "inspect", image_id], timeout=60))
    return Image(image_id, info)


@contextlib.contextmanager
def mounted(image: Image) -> Iterator[Path]:
    """The image's filesystem, mounted for the block."""
    root = Path(_run(["podman", "image", "mount", image.id], timeout=60).strip())
    try:
        yield root
    finally:
        _run(["podman", "image", "unmount", image.id], timeout=60)


def entrypoint(
    image: Image, root: Path, args: Sequence[str] | None, env: Mapping[str, str], **popen: Any
) -> subprocess.Popen[str]:
    """The image's entrypoint with ``args`` (None: its CMD), as a container would start it."""
    config = image.config
    cmd = config.get("Cmd") or []
    return in_image(image, root, [*config["Entrypoint"], *(cmd if args is None else args)],
                    env, **popen)  # fmt: skip


def in_image(
    image: Image, root: Path, command: Sequence[str], env: Mapping[str, str], **popen: Any
) -> subprocess.Popen[str]:
    """``command`` run in the mounted ``root`` as a container of the image would run it: its
    user, home, working directory and environment (with ``env`` on top).

    The process gets a mount namespace of its own, where /proc and /dev are mounted into the
    image: those mounts end with it, and the host's mount table never holds them. Every step
    execs the next, so the Popen's pid is the command's."""
    config = image.config
    uid = config["User"].split(":")[0]
    home = next((line.split(":")[5] for line in (root / "etc/passwd").read_text().splitlines()
                 if line.split(":")[2] == uid), "/")  # fmt: skip
    mount = shutil.which("mount") or "/bin/mount"
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    script = (f'{mount} -t proc proc "$0/proc" && {mount} --bind /dev "$0/dev" && '
              f'exec {chroot} --userspec={config["User"]} "$0" "$@"')  # fmt: skip
    return subprocess.Popen(
        [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private",
         "/bin/sh", "-c", script, str(root),
         "/usr/bin/env", "-C", config.get("WorkingDir") or "/", *command],
        env={**image.env, "HOME": home, **env}, text=True, **popen,
    )  # fmt: skip
