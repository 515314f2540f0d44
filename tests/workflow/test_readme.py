"""The README's workflow example runs as written (in a process of its own)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests import readme


def test_the_readme_workflow_example_runs(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", readme.block("workflow")],
        cwd=readme.ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "FLOWLOG_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Finished ['backup', 'upload'] ('backup', 'upload')"
