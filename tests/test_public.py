"""The public surface of ``flowlog`` (docs/python.md): what it offers, where from, and that
importing it costs nothing until a name is asked for."""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import version
from pathlib import Path

import flowlog
from tests.helpers import loaded_by

ROOT = Path(__file__).resolve().parent.parent


def _typed_imports() -> dict[str, str]:
    """The names app/__init__.py imports under TYPE_CHECKING (what mypy sees), by module."""
    tree = ast.parse((ROOT / "app" / "__init__.py").read_text())
    (block,) = [n for n in tree.body if isinstance(n, ast.If)]
    return {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
            for alias in node.names if node.module}  # fmt: skip


def test_every_public_name_is_what_its_module_holds() -> None:
    typed = _typed_imports()
    assert sorted([*typed, "__version__"]) == sorted(flowlog.__all__)
    for name, module in typed.items():
        assert getattr(flowlog, name) is getattr(importlib.import_module(module), name), name
    assert flowlog.__version__ == version("flowlog")
    assert flowlog.WorkflowDefinition.__module__ == "flowlog.workflow.definition"


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(flowlog, "Reactor")
    assert "NodeDefinition" in dir(flowlog)


def test_importing_flowlog_loads_none_of_its_modules_but_the_loader() -> None:
    assert loaded_by("import flowlog") == ["flowlog.lazy"]


def test_the_clients_errors_load_without_the_http_client() -> None:
    loaded = loaded_by("from flowlog.client.errors import NotFound")
    assert "flowlog.client.client" not in loaded
    assert [m for m in loaded if m.startswith("aiohttp")] == []
    assert "flowlog.client.client" in loaded_by("from flowlog.client import FlowlogClient")


def test_the_page_of_the_public_surface_names_every_name() -> None:
    page = (ROOT / "docs" / "python.md").read_text()
    assert [name for name in flowlog.__all__ if f"`{name}" not in page] == []
