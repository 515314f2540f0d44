"""Turns at the database server: a test that needs most of its connections runs alone.

The server allows 100 connections for every xdist worker's tests. The fifty writers' test
takes 50 by design (the contention that found a bug), and a benchmark's serve and worker
processes in another worker took the rest: "too many clients already" now and then. So every
test holds a shared turn while it runs, and a test marked ``whole_server`` an exclusive one:
it waits for the tests running elsewhere to end, and no new one starts meanwhile (it takes
the gate first, so that the shared turns, always overlapping on four workers, cannot starve
it). A lock of the file system, so every worker of the run shares it.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def server_turn(run_id: str, *, exclusive: bool) -> Iterator[None]:
    folder = Path(tempfile.gettempdir()) / f"flowlog-test-turns-{run_id}"
    folder.mkdir(exist_ok=True)
    with open(folder / "gate", "a+") as gate, open(folder / "server", "a+") as server:
        if exclusive:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(server, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)  # waits while a whole-server test waits or runs
            fcntl.flock(server, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(server, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
