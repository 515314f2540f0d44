"""A whole-server test runs alone: it waits for the tests running, and none starts meanwhile."""

from __future__ import annotations

import secrets
import threading
import time

from tests.server_turns import server_turn


def test_an_exclusive_turn_waits_for_shared_ones_and_holds_new_ones_back() -> None:
    run = f"self-test-{secrets.token_hex(4)}"
    said: list[str] = []
    running = threading.Event()
    release = threading.Event()

    def shared(name: str, hold: threading.Event | None) -> None:
        with server_turn(run, exclusive=False):
            said.append(f"{name} in")
            if hold is not None:
                running.set()
                hold.wait(10)
            said.append(f"{name} out")  # still in its turn: the order is the turns' order

    def exclusive() -> None:
        with server_turn(run, exclusive=True):
            said.append("whole in")
            time.sleep(0.2)
            said.append("whole out")

    first = threading.Thread(target=shared, args=("first", release))
    first.start()
    assert running.wait(10)
    whole = threading.Thread(target=exclusive)
    whole.start()
    time.sleep(0.2)  # the exclusive turn is waiting, holding the gate
    late = threading.Thread(target=shared, args=("late", None))
    late.start()
    time.sleep(0.2)
    assert said == ["first in"]  # neither the whole-server test nor the late one began
    release.set()
    for thread in (first, whole, late):
        thread.join(10)
    assert said == ["first in", "first out", "whole in", "whole out", "late in", "late out"]
