"""The layering of the folders: eventstore <- projections <- app, and sql below them all
(flowlog.eventstore, flowlog.projections, flowlog and flowlog.sql once installed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"app", "eventstore", "projections", "sql"}
MAY_IMPORT = {
    "sql": set(),
    "eventstore": {"sql"},
    "projections": {"sql", "eventstore"},
    "app": {"sql", "eventstore", "projections"},
}


def _folder(module: str) -> str | None:
    """The repository folder that holds ``module`` (None: not flowlog's)."""
    parts = module.split(".")
    if parts[0] != "flowlog":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FIRST_PARTY else "app"


def _imports(path: Path) -> set[str]:
    modules: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules += [f"{node.module}.{alias.name}" for alias in node.names]
    return {folder for module in modules if (folder := _folder(module))}


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        foreign = _imports(path) - MAY_IMPORT[package] - {package}
        assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


@pytest.mark.parametrize(
    "module",
    sorted(
        f"app.{package}.{path.stem}"
        for package in ("schedules", "archive", "replicas")
        for path in (ROOT / "app" / package).glob("*.py")
    ),
)
def test_a_schedules_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """app.schedules and app.archive build on app.workflow, whose engine runs the scheduler
    and the archiver (and reads through app.replicas): a module-level import the other way
    round is a cycle that only shows when such a module comes first (the CLI's, a user's
    script)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
