"""The README's workflow example runs as written (in a process of its own)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_workflow_example_runs(database_url: str) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- example: workflow.*?-->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "the README lost its workflow example"
    result = subprocess.run(
        [sys.executable, "-c", block.group(1)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "FLOWLOG_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Finished ['backup', 'upload'] ('backup', 'upload')"
