"""Failpoints: places where a test can make this process die, as a crash would.

``FLOWLOG_FAILPOINT=<name>`` makes the process kill itself (SIGKILL: nothing is flushed,
nothing is handed back) the first time it reaches the failpoint of that name. Unset, as in
production, a failpoint costs one dictionary lookup. Used by the tests that claim
"exactly once" across a crash at the worst moment (tests/schedules/test_processes.py), where
a kill from outside would hit that moment only by chance.
"""

from __future__ import annotations

import os
import signal

# Read here, at each failpoint, rather than in the settings (app/config.py): it is for tests,
# and a process that is handed no settings (a script, a test's engine) must still obey it.
VARIABLE = "FLOWLOG_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
