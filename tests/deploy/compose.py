"""deploy/compose.yaml as compose reads it: YAML (anchors and merge keys resolved), then
``${VAR:-default}`` filled in from an environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def defaults(text: str) -> dict[str, str]:
    """Each ``${VAR:-default}`` of ``text``: its default (empty when it has none)."""
    return {m.group(1): m.group(2) or "" for m in VARIABLE.finditer(text)}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with each variable replaced as compose does: its value, else its default."""
    return VARIABLE.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", text)
