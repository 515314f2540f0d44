"""``flowlog worker --remote URL --queue Q``: a worker of a task queue, through a flowlog server
(no database of its own), running the Python executors of the modules of ``--definitions``
(docs/client.md, "Workers"); until SIGTERM or SIGINT, then a graceful stop."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowlog.cli.args import REMOTE_CONCURRENCY
from flowlog.client import FlowlogClient
from flowlog.client.errors import FlowlogError
from flowlog.client.worker import queued_nodes
from flowlog.config import Settings
from flowlog.engine import load_definitions
from flowlog.workflow.definition import Registry, WorkflowDefinition
from flowlog.workflow.errors import InvalidDefinition
from flowlog.workflow.executor import Executor, PollFunction

log = logging.getLogger("flowlog")


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``worker``'s options, if anything."""
    if args.remote is None:
        if args.queue is not None:
            return (
                "--queue goes with --remote URL: a worker of a task queue polls a flowlog "
                "server (without --remote, worker runs the reactor on the database)"
            )
        if args.token is not None or args.worker_id is not None:
            return "--token and --worker-id go with --remote URL"
        return None
    if args.queue is None:
        return "--remote needs --queue: the task queue to work on"
    return None


@dataclass
class Served:
    """What a worker's modules give it to run."""

    definitions: list[WorkflowDefinition] = field(default_factory=list)
    executors: dict[str, Executor] = field(default_factory=dict)
    polls: dict[str, PollFunction] = field(default_factory=dict)


def load(module_names: Iterable[str]) -> Served:
    """The definitions of each module (``DEFINITIONS`` or ``register(registry)``, as every
    process loads them) and its ``EXECUTORS`` and ``POLLS`` (node name -> function), which run
    the nodes of definitions registered as JSON. ValueError for a module with none of them."""
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)  # as `python -m` does: modules beside the user come first
    served = Served()
    registry = Registry()
    for name in module_names:
        module = importlib.import_module(name)
        executors = _functions(module, name, "EXECUTORS")
        polls = _functions(module, name, "POLLS")
        if hasattr(module, "DEFINITIONS") or hasattr(module, "register") or not executors:
            load_definitions([name], registry)  # says what is missing when nothing is there
        served.executors.update(executors)
        served.polls.update(polls)
    served.definitions = registry.latest()
    return served


def _functions(module: Any, name: str, attribute: str) -> dict[str, Any]:
    found = getattr(module, attribute, None)
    if found is None:
        return {}
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and callable(f) for k, f in found.items()
    ):
        raise TypeError(f"{name}.{attribute} must map node names to async functions")
    return found


def main(args: argparse.Namespace, settings: Settings, command: argparse.ArgumentParser) -> int:
    modules = tuple(args.definitions or settings.definitions)
    origin = "--definitions" if args.definitions else "FLOWLOG_DEFINITIONS"
    if not modules:
        command.error("--remote needs --definitions MODULE (or FLOWLOG_DEFINITIONS): the "
                      "executors the worker runs")  # fmt: skip
    try:
        served = load(modules)
    except (ImportError, ValueError, TypeError, InvalidDefinition) as exc:
        command.error(f"cannot load the definitions of {origin} ({', '.join(modules)}): {exc}")
    if not queued_nodes(args.queue, served.definitions) and not served.executors:
        command.error(f"{origin} ({', '.join(modules)}) has no executor for queue "
                      f"{args.queue!r}: no node of its definitions is offered on it, and it "
                      "has no EXECUTORS")  # fmt: skip
    try:
        asyncio.run(_work(args, settings, served))
    except FlowlogError as exc:
        print(f"flowlog worker: refused by {args.remote}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _work(args: argparse.Namespace, settings: Settings, served: Served) -> None:
    async with FlowlogClient(args.remote, token=args.token or settings.token) as client:
        worker = client.worker(
            args.queue, definitions=served.definitions, executors=served.executors,
            polls=served.polls, concurrency=args.concurrency or REMOTE_CONCURRENCY,
            worker_id=args.worker_id,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()
