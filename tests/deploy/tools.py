"""The system tools the deployment tests drive (podman, mmdebstrap, systemd-analyze).

Without them a test module skips and says how to install them; with
``FLOWLOG_REQUIRE_DEPLOY_TOOLS=1`` (``.ci/run`` sets it after installing them) a missing tool
fails the run instead."""

from __future__ import annotations

import os
import shutil

import pytest


def missing_tools(*names: str, root: bool = False) -> str | None:
    """Why the tools cannot be used here (None: they can)."""
    if absent := [name for name in names if shutil.which(name) is None]:
        return f"{', '.join(absent)} not installed: apt-get install -y {' '.join(absent)}"
    if root and os.geteuid() != 0:
        return f"{', '.join(names)}: mounting an image and chroot into it need root"
    return None


def require_tools(*names: str, root: bool = False) -> None:
    """Skips the calling module without the tools (fails where they are required)."""
    why = missing_tools(*names, root=root)
    if why is None:
        return
    if os.environ.get("FLOWLOG_REQUIRE_DEPLOY_TOOLS"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why, allow_module_level=True)
