"""A package's names, loaded when first asked for (PEP 562): importing one module of the
package then loads that module's own imports, not everything the package offers (a command
that only reads the log does not load the HTTP client or the engine)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, tuple[str, ...]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose names live in the modules of
    ``homes`` (a module: the names it holds); a name once loaded stays in ``namespace``."""
    module_of = {name: module for module, names in homes.items() for name in names}

    def find(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *module_of})

    return find, names
