"""How a definition is recorded and versioned: executors and poll functions by their settings
or qualified names, and the content hash of the described definition (its version)."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import orjson


def described_callable(func: object) -> Any:
    """How an executor or poll function is recorded: built-ins by their settings (so that a
    change of settings is a new version), everything else by qualified name."""
    describe = getattr(func, "describe", None)
    if callable(describe):
        return describe()
    return qualified_name(func)


def qualified_name(func: object) -> str | None:
    if func is None:
        return None
    target = func if inspect.isfunction(func) or inspect.ismethod(func) else type(func)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"


def content_hash(described: dict[str, Any]) -> str:
    canonical = orjson.dumps(described, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]
