"""One Chromium for a test session (each xdist worker): started once, reached over the DevTools
protocol by each module's Playwright.

Playwright's sync API keeps an event loop running in the thread while it is open, so it cannot
stay open for the session (the asynchronous tests the same worker runs next need the thread);
a module opens it, connects to this browser (a fraction of a second) and disconnects. Before,
each module launched a browser of its own. The switches are those Playwright passes when it
launches Chromium headless, so pages behave as they did then (no throttled background tabs, no
scrollbars taking width, sRGB colours).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SWITCHES = (
    "--headless", "--hide-scrollbars", "--mute-audio",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,"
    "primaryPointerType=4,availablePointerTypes=4",
    # Root cannot use Chromium's sandbox; the others keep it off this closed network.
    "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--disable-default-apps",
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding", "--disable-back-forward-cache", "--disable-breakpad",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-hang-monitor",
    "--disable-ipc-flooding-protection", "--disable-popup-blocking",
    "--disable-prompt-on-repost", "--force-color-profile=srgb", "--metrics-recording-only",
    "--password-store=basic", "--use-mock-keychain", "--enable-automation",
)  # fmt: skip


@contextlib.contextmanager
def shared_chromium(executable: str, within: float = 60) -> Iterator[str]:
    """Runs Chromium until the block ends; yields its DevTools endpoint (``ws://...``)."""
    profile = Path(tempfile.mkdtemp(prefix="flowlog-chromium-"))
    with (profile / "stderr.log").open("wb") as said:
        process = subprocess.Popen(
            [executable, *SWITCHES, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=said,
        )  # fmt: skip
    try:
        yield _endpoint(process, profile, within)
    finally:
        terminate(process, 10)
        shutil.rmtree(profile, ignore_errors=True)


def terminate(process: subprocess.Popen[bytes], within: float) -> None:
    """Asks ``process`` to stop, and kills it if it has not within ``within`` seconds."""
    process.terminate()
    try:
        process.wait(within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _endpoint(process: subprocess.Popen[bytes], profile: Path, within: float) -> str:
    """The endpoint Chromium writes into its profile once it listens (its port, then the
    browser's path)."""
    written = profile / "DevToolsActivePort"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = (profile / "stderr.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Chromium exited with {process.returncode}: {said}")
        lines = written.read_text().split() if written.exists() else []
        # Read whole: the file may be caught half written (a browser id is a UUID).
        if len(lines) == 2 and re.fullmatch(r"/devtools/browser/[0-9a-f-]{36}", lines[1]):
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise RuntimeError(f"Chromium did not listen within {within} s")
