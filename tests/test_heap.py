"""What a started process holds is frozen out of later collections (app/heap.py). Run in a
process of its own: freezing the test process would keep every test's garbage alive."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc
from flowlog.heap import freeze_startup
kept = []
class Cycle:
    def __init__(self): self.me = self
Cycle()                       # garbage made before: collected, not frozen
frozen = freeze_startup()
assert frozen == gc.get_freeze_count() > 1000, frozen
gc.disable()                  # no automatic pass: the count below is the one collection's
for _ in range(1000):
    Cycle()                   # garbage made after: still collected
assert gc.collect() >= 1000
gc.enable()
print(frozen)
"""


def test_what_was_alive_is_frozen_and_later_garbage_is_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 1000
