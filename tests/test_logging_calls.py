"""Log calls never pass an ``extra`` key that LogRecord reserves (logging raises KeyError then,
and only at a level that is enabled: a crash that hides in tests and shows in production)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def test_extra_keys_of_every_log_call_are_not_reserved() -> None:
    found = []
    for package in ("app", "eventstore", "projections"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                        for key in keyword.value.keys:
                            if isinstance(key, ast.Constant) and key.value in RESERVED:
                                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {key.value}")
    assert found == []
