"""What a node that runs children says: a map over a context list, parallel branches, or one
sub-flow (its settings, their checks, and how they are described in a definition's version).

A map's and a sub-flow's children are flows of another definition (``flow``); a parallel
node's branches are flows of the parent's own definition, each entered at its branch's key and
ending where its path ends. The decisions on them are in app/workflow/child_decisions.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

MAX_ITEMS = 10_000
"""The most elements a map runs children for (one node)."""
DEFAULT_MAX_CONCURRENCY = 10
MAX_CONCURRENCY = 1_000
MAX_DEPTH = 8
"""The deepest a tree of flows goes: a definition whose children run it again (a sub-flow of
itself, say) would otherwise make flows for ever."""

Join = Literal["all", "any"] | int
"""A parallel node succeeds when every branch ended well ("all"), the first did ("any"), or
at least that many did."""

_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")


async def no_executor(node: Any, ctx: Any) -> None:
    """The executor of a node that runs children: never called (the children are its work)."""
    raise AssertionError("a node that runs children has no executor")


@dataclass(frozen=True, slots=True)
class Children:
    """The settings of a ``map``, ``parallel`` or ``subflow`` node (those its kind uses)."""

    flow: str = ""
    """map, subflow: the definition each child runs."""
    items: str = ""
    """map: the context key holding the list of elements."""
    item_key: str = "item"
    """map: the key under which each child finds its element."""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    tolerated_failures: int | str = 0
    """map: failed children that still let the node succeed (a count, or a share: "10%")."""
    results_key: str = ""
    """map: the context key the children's results are collected in, in element order;
    parallel: the key of the branches' final contexts by branch ("": none)."""
    result_key: str = ""
    """map: the key of each child's context that is its result ("": its whole context);
    subflow: the parent's context key that receives the child's final context."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """subflow: context of the child, over the parent's."""
    branches: Mapping[str, str] = field(default_factory=dict)
    """parallel: branch name -> the key of its first node."""
    join: Join = "all"
    on_branch_failure: Literal["fail", "wait"] = "fail"

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))
        object.__setattr__(self, "branches", MappingProxyType(dict(self.branches)))

    def tolerated(self, total: int) -> int:
        """Failed children the node tolerates among ``total``."""
        if isinstance(self.tolerated_failures, str):
            return total * int(self.tolerated_failures.rstrip("%")) // 100
        return self.tolerated_failures

    def needed(self, total: int) -> int:
        """Branches that must end well for a parallel node to succeed."""
        if self.join == "all":
            return total
        if self.join == "any":
            return min(1, total)
        return min(int(self.join), total)

    def describe(self, kind: str) -> dict[str, Any]:
        """The settings the node's kind uses, as the version hashes them."""
        if kind == "map":
            return {"flow": self.flow, "items": self.items, "itemKey": self.item_key,
                    "maxConcurrency": self.max_concurrency,
                    "toleratedFailures": self.tolerated_failures,
                    "resultsKey": self.results_key, "resultKey": self.result_key}  # fmt: skip
        if kind == "subflow":
            return {"flow": self.flow, "context": dict(self.context), "resultKey": self.result_key}
        return {"branches": dict(self.branches), "join": self.join,
                "onBranchFailure": self.on_branch_failure,
                "resultsKey": self.results_key}  # fmt: skip

    def problems(self, kind: str) -> list[str]:
        found: list[str] = []
        if kind in ("map", "subflow") and not self.flow:
            found.append(f"a {kind} node names the definition its children run (flow)")
        if kind == "map":
            if not self.items:
                found.append("a map node names the context key of its list (items)")
            if not self.item_key:
                found.append("a map node needs an itemKey")
            if not 1 <= self.max_concurrency <= MAX_CONCURRENCY:
                found.append(f"maxConcurrency must be between 1 and {MAX_CONCURRENCY}")
            tolerated = self.tolerated_failures
            if isinstance(tolerated, str) and not _PERCENT.match(tolerated):
                found.append('toleratedFailures is a count or a share such as "10%"')
            if isinstance(tolerated, int) and not 0 <= tolerated <= MAX_ITEMS:
                found.append("toleratedFailures must not be negative")
        if kind == "parallel":
            if not self.branches:
                found.append("a parallel node needs at least one branch")
            if isinstance(self.join, int) and not 1 <= self.join <= len(self.branches):
                found.append("join atLeast must be between 1 and the number of branches")
            if isinstance(self.join, str) and self.join not in ("all", "any"):
                found.append('join is "all", "any" or {"atLeast": N}')
        return found
