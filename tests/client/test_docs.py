"""docs/client.md's worked examples (the client's, the worker's), run as a user would run them,
against a real server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def example(section: str = "") -> str:
    """The first python block of docs/client.md after the heading ``section`` (any)."""
    text = (ROOT / "docs" / "client.md").read_text()
    if section:
        text = text[text.index(f"\n## {section}\n") :]
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, "docs/client.md has no python example"
    return match.group(1)


async def run_example(code: str, server: str, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "FLOWLOG_URL": server, "FLOWLOG_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(script)], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_worked_example_runs(server: str, tmp_path: Path) -> None:
    out = await run_example(example(), server, tmp_path)
    assert "NodeWaiting" in out
    assert "CallbackReceived" in out
    assert "status: Finished" in out
    assert "(checked the snapshot)" in out  # the approval's reason, in the history
    assert "refused: 40111" in out


async def test_the_workers_example_runs(server: str, tmp_path: Path) -> None:
    out = await run_example(example("Workers"), server, tmp_path)
    assert out.splitlines() == [
        "status: Finished",
        "result: rendered 24 frames",
        "rendered: 24",
    ]
