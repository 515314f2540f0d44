"""The heap of a long-running process: what it holds once started stays out of every later
garbage collection.

A started `flowlog serve` or `flowlog worker` holds a few hundred thousand objects that live as
long as it does (modules, classes, functions, pydantic's validators, the app and the engine).
Python's cyclic collector scans all of them in each pass over its oldest generation, and the
first such pass came while `serve --no-reactor` answered its first creates: 68 to 138 ms
instead of 19, the p99 of `bench http`'s split layout 2x its baseline's. ``gc.freeze()`` moves
them into a generation the collector never scans (as Instagram did for its Django servers);
what is made afterwards is collected as before, and what freezing keeps alive was alive anyway
(a full collection runs first)."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("flowlog")


def freeze_startup() -> int:
    """Collects, then freezes what is left (call once the process has started); returns how
    many objects are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("startup heap frozen", extra={"objects": frozen})
    return frozen
