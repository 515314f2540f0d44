"""An adaptive limit on the flows a reactor drives at once (TCP Vegas, as Netflix's
concurrency-limits applies it to servers, with the queue counted where it forms).

By Little's law, flows in flight = flows a second x the time each takes. Once the process (or
its database) is saturated, more flows in flight add no throughput, only waiting: a fixed 32
made every transition of CPU-trivial executors wait ~20 ms for the group commits and the event
loop, while 32 executors that each sleep 200 ms left the machine idle. The limit is steered by
how long transitions wait instead.

**What is measured.** A sample is the reactor's own time for one transition: from a drive
asking for an append (an executor's outcome and the next node's start, or a first node's start)
to the drive running again with it committed. It covers what queues in this process and behind
it: the event loop's backlog, the group commit's batch, the database. It leaves the executor's
own time out: a node that calls a slow HTTP service or sleeps 200 ms queues on nothing of ours,
and counting its time would read slow executors as overload and shrink the limit exactly when
more flows in flight cost nothing. With each sample comes how many drives were in a transition
then (asking for an append and not running again yet): the flows in the reactor's own pipe.

**How the queue is estimated.** TCP Vegas (Netflix ``VegasLimit``) estimates the queued as
``limit x (1 - no_load / latency)``: every request in flight is in the pipe it measures. A flow
in flight is not: most of its time may be its executor's. Counted that way, 100 flows of 200 ms
executors whose transitions take 2x their no-load latency on a busy machine read as 50 queued,
and the limit stays near 10 although the 5 flows really in a transition queue behind nobody.
So the estimate here is ``in_transition x (1 - no_load / latency)``, with ``in_transition`` the
window's mean count of drives in a transition: the same as Vegas's for trivial executors (every
flow is always in a transition), a 1/(1 + executor / transition time) share of it for slow ones.

**How the limit moves.** Samples are gathered in windows of about half a sample per flow in
flight (at least ``WINDOW_SAMPLES``); a window's latency is its median. The no-load latency is
a low percentile (``BASELINE_QUANTILE``) of the last ``BASELINE_WINDOWS`` windows' latencies,
not the lowest ever seen (Vegas's ``rtt_noload``): on a machine shared with other work, the
lowest of thousands of windows is a lucky one, and every window after it would read as
queued; and a machine that got slower is measured again rather than read as queueing for
ever. A steady load would still become its own baseline (every window alike, the limit in
Vegas's sweet spot, then none of them reads as queued, and the limit climbs a step every 200
windows): so every ``PROBE_EVERY`` windows the limit is halved until a window has been
measured with no more flows in flight than that (BBR's ProbeRTT), and that window's latency
stands as a candidate no-load latency until the next probe. Where the load queued, the probe
is faster, the baseline falls and the limit with it; where it did not, the probe changes
nothing. It costs half the limit for one window (one flow's life for slow executors).

Per window, with Vegas's bands of the queued (``alpha``, ``beta``: 3 and 6, or a tenth and a
fifth of a larger pipe):

- at most ``threshold`` queued (about none): the limit grows by a fifth (at least 6), so slow
  executors take it from 16 to 1,000 in some 25 windows;
- fewer than ``alpha`` queued: it grows by one;
- more than ``beta`` queued: it shrinks by half the excess (at most by half), so that an
  overload is left within a few windows, not a few hundred;
- in between: it stays.

A limit that is not used does not grow: a window whose flows in flight never reached half the
limit says nothing about more (Netflix's "app limited" rule). Nor does a limit whose flows are
mostly not in their executors (under half of them, on average over the window): those flows
wait on the reactor (transitions, claims, releases), and more of them would only wait longer
(trivial executors: few are; 200 ms ones: most are). A quarter was tried: under a backlogged
event loop, trivial executors that wait for their first turn count as executing often enough
that the limit crept from 32 to 52. This
rule needs no latency at all, so noise cannot beat it: on a machine shared with other work a
window's median often dips below the baseline by luck, and Vegas alone let trivial executors'
limit wander from 32 up to 94. The limit stays within
``[minimum, maximum]``. Pure and deterministic: no I/O, no clock (windows are counted in
samples), the same samples give the same limits.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

WINDOW_SAMPLES = 10
"""The fewest samples a window judges by (a median of fewer would be noise)."""
BASELINE_WINDOWS = 200
"""The windows whose latencies the no-load latency is read from."""
BASELINE_QUANTILE = 0.05
"""Which of them: the latency a twentieth of them were under (the tenth lowest of 200)."""
PROBE_EVERY = 100
"""Windows between two probes of the no-load latency at half the limit."""


@dataclass(frozen=True, slots=True)
class Judged:
    """What one window made of the limit (for logs and tests)."""

    latency: float
    """The window's median transition, seconds."""
    no_load: float
    in_transition: float
    """Drives in a transition, on average over the window's samples."""
    queued: float
    limit: int


class ConcurrencyLimit:
    """How many flows may be in flight now (:attr:`limit`), told of every transition by
    :meth:`sample`. ``minimum == maximum`` makes a fixed limit."""

    __slots__ = (
        "_busiest", "_estimate", "_executing", "_flying", "_pipe", "_probed", "_probing",
        "_recent", "_samples", "_since_probe", "last", "maximum", "minimum",
    )  # fmt: skip

    def __init__(self, initial: int, minimum: int, maximum: int) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(
                f"a concurrency limit needs 1 <= minimum <= maximum, not {minimum}..{maximum}"
            )
        self.minimum = minimum
        self.maximum = maximum
        self._estimate = float(min(max(initial, minimum), maximum))
        self._samples: list[float] = []
        self._pipe = 0
        self._busiest = 0
        self._flying = 0
        self._executing = 0
        self._recent: deque[float] = deque(maxlen=BASELINE_WINDOWS)
        self._since_probe = 0
        self._probing = False
        self._probed = math.inf
        self.last: Judged | None = None
        """The latest window's judgement; None before the first."""

    @property
    def limit(self) -> int:
        if self._probing:
            return max(self.minimum, int(self._estimate / 2))
        return int(self._estimate)

    @property
    def fixed(self) -> bool:
        return self.minimum == self.maximum

    def sample(self, seconds: float, in_flight: int, in_transition: int, executing: int) -> None:
        """One transition took ``seconds`` of the reactor's own time; ``in_flight`` flows
        were driven as it ended, ``in_transition`` of them (this one too) in a transition and
        ``executing`` in their executors."""
        if self.fixed:
            return
        if self._probing and in_flight > self.limit:
            return  # still draining to the probe's limit: not a no-load sample yet
        self._samples.append(seconds)
        self._pipe += in_transition
        self._flying += in_flight
        self._executing += executing
        self._busiest = max(self._busiest, in_flight)
        if len(self._samples) >= max(WINDOW_SAMPLES, self.limit // 2):
            self._judge()

    def _judge(self) -> None:
        latency = statistics.median(self._samples)
        pipe = self._pipe / len(self._samples)
        busiest = self._busiest
        waiting_on_us = self._executing * 2 < self._flying
        self._samples.clear()
        self._pipe = self._busiest = self._flying = self._executing = 0
        if self._probing:
            self._probing, self._probed = False, latency
            return
        self._since_probe += 1
        if self._since_probe >= PROBE_EVERY:
            self._since_probe, self._probing = 0, True
        self._recent.append(latency)
        ranked = sorted(self._recent)
        no_load = min(ranked[int(len(ranked) * BASELINE_QUANTILE)], self._probed)
        queued = pipe * (1 - no_load / latency) if latency > 0 else 0.0
        self._estimate = self._moved(queued, pipe, busiest, waiting_on_us)
        self.last = Judged(latency, no_load, pipe, queued, self.limit)

    def _moved(self, queued: float, pipe: float, busiest: int, waiting_on_us: bool) -> float:
        estimate = self._estimate
        alpha, beta = max(3.0, pipe / 10), max(6.0, pipe / 5)
        moved = estimate
        if queued <= max(1.0, math.log10(max(pipe, 1.0))):
            moved = estimate + max(6.0, estimate / 5)
        elif queued < alpha:
            moved = estimate + 1
        elif queued > beta:
            moved = estimate - min((queued - beta) / 2, estimate / 2)
        if moved > estimate and (busiest * 2 < estimate or waiting_on_us):
            moved = estimate  # unused, or used by flows that wait on us: more would not help
        return min(max(moved, float(self.minimum)), float(self.maximum))
