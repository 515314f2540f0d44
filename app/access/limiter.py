"""Failed log-ins, limited per client address: a guesser gets ``allowed`` tries a ``window``,
then is told to wait (and counted), while everyone else logs in as usual."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureLimit:
    def __init__(
        self, allowed: int = 10, window: float = 60.0, *, most_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.allowed = allowed
        self.window = window
        self._most = most_addresses
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        cutoff = self._clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def blocked(self, address: str) -> float:
        """Seconds ``address`` must wait before it may try again (0: it may now)."""
        failures = self._recent(address)
        if len(failures) < self.allowed:
            return 0.0
        return max(0.0, failures[0] + self.window - self._clock())

    def failed(self, address: str) -> None:
        if address not in self._failures and len(self._failures) >= self._most:
            # Memory stays bounded under a spray of addresses: forget the oldest one.
            del self._failures[next(iter(self._failures))]
        self._recent(address)
        self._failures.setdefault(address, deque()).append(self._clock())


class Coalescer:
    """At most one record per key a ``window``: the refusals in between are counted and told
    with the next record (``repeats``), so a caller refused in a loop cannot fill the log."""

    def __init__(
        self, window: float, *, most_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.window = window
        self._most = most_keys
        self._clock = clock
        self._last: dict[object, tuple[float, int]] = {}

    def admit(self, key: object) -> int | None:
        """None: fold this one into the next record; else record it now, saying how many were
        folded since the last record of ``key``."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.window:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self._most:
            del self._last[next(iter(self._last))]  # bounded memory: forget the oldest key
        self._last.pop(key, None)
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]
