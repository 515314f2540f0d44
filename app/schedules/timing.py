"""When schedules fire: the fire times of a cron expression or an interval, their jitter, and
which fires are due after a pause (the templates of the flows fires start: templates.py).

Pure (no clock, no randomness, no I/O but the time zone database) so that every process computes
the same fire times, and the same due time for each.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MIN_INTERVAL_SECONDS: Final = 1.0
MAX_JITTER_SECONDS: Final = 86_400.0
# Skipped cron fires are counted one cronsim step each (10 to 60 µs), so after a long pause
# counting stops here: a week of an every-minute expression, a tenth of a second or so.
SKIP_COUNT_LIMIT: Final = 10_000

CatchUp = Literal["skip", "last"]

_MICROSECOND: Final = timedelta(microseconds=1)
# DST moves wall clocks by two hours at most (Antarctica/Troll): a day is a safe margin.
_DST_MARGIN: Final = timedelta(days=1)
_SAMPLE_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule fires: at the times matching `cron` (read in `timezone`), or at
    anchor + k * interval_seconds for k >= 0 (the anchor only matters to intervals); never after
    `end_at`.

    Checked when made (ValueError), so that what is given a Timing can trust it.
    """

    cron: str | None
    interval_seconds: float | None
    anchor: datetime
    timezone: str = "UTC"
    end_at: datetime | None = None
    jitter_seconds: float = 0.0

    def __post_init__(self) -> None:
        problems = timing_problems(
            self.cron, self.interval_seconds, self.timezone, self.end_at, self.jitter_seconds
        )
        if not _is_aware(self.anchor):
            problems.append("the anchor must have a UTC offset")
        if problems:
            raise ValueError("; ".join(problems))


def timing_problems(
    cron: str | None,
    interval_seconds: float | None,
    timezone: str,
    end_at: datetime | None,
    jitter_seconds: float,
) -> list[str]:
    """What is wrong with these timing settings, in words for people; empty when nothing is."""
    problems: list[str] = []
    if (cron is None) == (interval_seconds is None):
        problems.append("give either a cron expression or an interval, not both or neither")
    if cron is not None:
        problems.extend(_cron_problems(cron))
    if interval_seconds is not None and not (
        math.isfinite(interval_seconds) and interval_seconds >= MIN_INTERVAL_SECONDS
    ):
        problems.append(f"the interval must be at least {MIN_INTERVAL_SECONDS:g} second")
    if _zone(timezone) is None:
        problems.append(f"unknown time zone {quoted(timezone)} (IANA names: 'Europe/Berlin')")
    if end_at is not None and not _is_aware(end_at):
        problems.append("end_at must have a UTC offset")
    if not (math.isfinite(jitter_seconds) and 0 <= jitter_seconds <= MAX_JITTER_SECONDS):
        problems.append(f"the jitter must be 0 to {MAX_JITTER_SECONDS:g} seconds (a day)")
    elif interval_seconds is not None and 0 < interval_seconds <= jitter_seconds:
        # A fire would be due after the next one: due() relies on them staying in order.
        problems.append("the jitter must be shorter than the interval")
    return problems


def fire_times(timing: Timing, after: datetime, limit: int) -> list[datetime]:
    """The first `limit` nominal fire times strictly after `after`, ascending, in UTC.

    Cron expressions are read in the schedule's time zone with Debian cron's DST rules, as cronsim
    implements them. A time of day that a spring-forward skips fires when the gap ends (02:30 at
    03:00); one that a fall-back repeats fires once, at its first occurrence. Expressions with a
    `*` in the minute or hour field (`0 * * * *`, `*/15 2 * * *`) are exempt and follow the wall
    clock as it runs: nothing in a skipped hour, twice in a repeated one.
    """
    return list(islice(_fires_after(timing, _utc(after, "after")), limit))


def jitter(schedule_id: str, fire_time: datetime, jitter_seconds: float) -> timedelta:
    """How long after its nominal time a fire is due, in [0, jitter_seconds).

    Spreads the fires of schedules sharing a cron expression. A hash rather than a random draw,
    so that every process agrees on when a fire is due.
    """
    if not (math.isfinite(jitter_seconds) and jitter_seconds >= 0):
        raise ValueError("jitter_seconds must be a number of seconds, 0 or more")
    # Whole microseconds, rounded down so that the result stays below jitter_seconds.
    span = int(jitter_seconds * 1_000_000)
    if span == 0:
        return timedelta(0)
    # UTC, so that the same instant written in any zone hashes alike.
    key = f"{schedule_id}\n{_utc(fire_time, 'fire_time').isoformat()}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return (int.from_bytes(digest, "big") * span >> 64) * _MICROSECOND


@dataclass(frozen=True, slots=True)
class Due:
    """What to do about a schedule now (see due()).

    The fires it settles are `fire` and the skipped ones. The next call's last_considered is the
    latest of them: `fire`, else `last_skipped`, else the previous last_considered.
    """

    # The nominal fire time to start a flow for now.
    fire: datetime | None
    skipped_count: int
    first_skipped: datetime | None
    last_skipped: datetime | None
    # The first fire not settled (possibly before now, waiting for its jitter); None once the
    # schedule has ended.
    next_fire: datetime | None


def due(
    timing: Timing,
    schedule_id: str,
    last_considered: datetime,
    now: datetime,
    catch_up: CatchUp,
    grace_seconds: float = 60.0,
) -> Due:
    """Settle the fires after `last_considered` that are due at `now`: nominal + jitter <= now.

    A due fire is missed (the service was down or behind) when its nominal time is more than
    grace_seconds + jitter_seconds before now. "skip": the latest due fire runs unless it is
    missed, every other due fire is skipped. "last": the latest due fire runs, missed or not,
    and the earlier ones are skipped. Fires are settled in order: a fire also waits for any
    earlier fire whose jitter makes it due later (cron schedules only: their jitter is not
    bounded by the gap between fires).

    The cost is bounded whatever the pause. Interval fires are counted arithmetically, exactly.
    Cron fires are counted one by one up to SKIP_COUNT_LIMIT, where skipped_count stops (it then
    means "at least"), and the latest fires are then found from now backwards.
    """
    if catch_up not in ("skip", "last"):
        raise ValueError(f"catch_up must be 'skip' or 'last', not {catch_up!r}")
    if not (math.isfinite(grace_seconds) and grace_seconds >= 0):
        raise ValueError("grace_seconds must be a number of seconds, 0 or more")
    start, now = _utc(last_considered, "last_considered"), _utc(now, "now")
    spread = timedelta(seconds=timing.jitter_seconds)
    # Fires up to `settled` are due whatever their jitter: only the later ones need checking.
    settled = max(start, now - spread)
    count, first, latest = _fires_between(timing, start, settled)
    next_fire = None
    for fire in _fires_after(timing, settled):
        if fire > now or fire + jitter(schedule_id, fire, timing.jitter_seconds) > now:
            next_fire = fire
            break
        count, latest = count + 1, (*latest[-1:], fire)
        first = fire if first is None else first
    if count == 0:
        return Due(None, 0, None, None, next_fire)
    run: datetime | None = latest[-1]
    if catch_up == "skip" and latest[-1] < now - timedelta(seconds=grace_seconds) - spread:
        run = None
    skipped = count if run is None else count - 1
    if skipped == 0:
        return Due(run, 0, None, None, next_fire)
    if timing.cron is not None:
        skipped = min(skipped, SKIP_COUNT_LIMIT)  # cron fires are counted up to there only
    return Due(run, skipped, first, latest[-1] if run is None else latest[-2], next_fire)


def _cron_problems(cron: str) -> list[str]:
    # Five fields only: cronsim's optional seconds field is not crontab(5), and exempts the
    # expression from Debian's DST rules.
    if len(cron.split()) != 5:
        return [
            f"cron expression {quoted(cron)} must have five fields: "
            "minute hour day-of-month month day-of-week"
        ]
    try:
        CronSim(cron, _SAMPLE_TIME)
    except CronSimError as error:
        return [f"cron expression {quoted(cron)}: {error}"]
    except ValueError:  # from int(), on thousands of digits
        return [f"cron expression {quoted(cron)}: a number is too long"]
    return []


def quoted(text: str) -> str:
    """Someone's input, quoted for a message, and cut short: it can be of any length."""
    return repr(text if len(text) <= 60 else f"{text[:57]}...")


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError, OSError: paths, and files or folders of the database that are not zones.
        return None


def _is_aware(moment: datetime) -> bool:
    return moment.utcoffset() is not None


def _utc(moment: datetime, what: str) -> datetime:
    if not _is_aware(moment):
        raise ValueError(f"{what} must have a UTC offset")
    # Datetimes sharing a tzinfo subtract and compare by wall clock, wrongly across DST changes:
    # all the arithmetic here is in UTC.
    return moment.astimezone(UTC)


def _fires_after(timing: Timing, after: datetime) -> Iterator[datetime]:
    """The nominal fire times strictly after `after` (in UTC), ascending, in UTC."""
    if timing.cron is not None:
        fires = _cron_fires(timing.cron, ZoneInfo(timing.timezone), after)
    else:
        fires = _interval_fires(timing, after)
    end = None if timing.end_at is None else _utc(timing.end_at, "end_at")
    for fire in fires:
        if end is not None and fire > end:
            return
        yield fire


def _cron_fires(cron: str, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    matches = CronSim(cron, after.astimezone(zone))
    while True:
        try:
            fire = next(matches).astimezone(UTC)
        except (StopIteration, OverflowError):  # no match in 50 years, or past the year 9999
            return
        # A repeated wall time fires at its first occurrence, before `after` when that lies in
        # the repeated hour.
        if fire > after:
            yield fire


def _interval(timing: Timing) -> tuple[datetime, int]:
    """The anchor in UTC, and the interval in microseconds (datetime's resolution: exact)."""
    assert timing.interval_seconds is not None
    return _utc(timing.anchor, "anchor"), round(timing.interval_seconds * 1_000_000)


def _index_after(anchor: datetime, step: int, moment: datetime) -> int:
    """The k of the first interval fire (anchor + k * step, k >= 0) strictly after `moment`."""
    return max(0, (moment - anchor) // _MICROSECOND // step + 1)


def _nth(anchor: datetime, step: int, index: int) -> datetime:
    return anchor + index * step * _MICROSECOND


def _interval_fires(timing: Timing, after: datetime) -> Iterator[datetime]:
    anchor, step = _interval(timing)
    index = _index_after(anchor, step, after)
    while True:
        try:
            fire = _nth(anchor, step, index)
        except OverflowError:  # past the year 9999
            return
        yield fire
        index += 1


def _fires_between(
    timing: Timing, start: datetime, end: datetime
) -> tuple[int, datetime | None, tuple[datetime, ...]]:
    """How many fires there are in (start, end], the first, and the last two (for cron, the count
    stops past SKIP_COUNT_LIMIT)."""
    if timing.end_at is not None:
        end = min(end, _utc(timing.end_at, "end_at"))
    if end <= start:
        return 0, None, ()
    if timing.cron is None:
        anchor, step = _interval(timing)
        first, last = _index_after(anchor, step, start), _index_after(anchor, step, end) - 1
        if last < first:
            return 0, None, ()
        last_two = tuple(_nth(anchor, step, k) for k in range(max(first, last - 1), last + 1))
        return last - first + 1, _nth(anchor, step, first), last_two
    count, first_fire = 0, None
    latest: tuple[datetime, ...] = ()
    for fire in _fires_after(timing, start):
        if fire > end:
            break
        count, latest = count + 1, (*latest[-1:], fire)
        first_fire = fire if first_fire is None else first_fire
        if count > SKIP_COUNT_LIMIT:
            return count, first_fire, _last_cron_fires(timing, latest, end)
    return count, first_fire, latest


def _last_cron_fires(
    timing: Timing, counted: tuple[datetime, ...], end: datetime
) -> tuple[datetime, ...]:
    """The last two cron fires up to `end`, after the last two counted, without stepping through
    all of those in between."""
    assert timing.cron is not None
    # cronsim's reverse iteration finds them cheaply. The forward one (fire_times') still lists
    # them, from a margin earlier, so that both agree even if the directions differ around DST.
    backward = CronSim(timing.cron, end.astimezone(ZoneInfo(timing.timezone)), reverse=True)
    found = [match.astimezone(UTC) for match in islice(backward, 2)]
    floor, latest = counted[-1], counted
    for fire in _fires_after(timing, max(floor, min(found, default=floor) - _DST_MARGIN)):
        if fire > end:
            break
        latest = (*latest[-1:], fire)
    return latest
