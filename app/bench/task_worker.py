"""A remote worker of ``flowlog bench tasks``: one OS process that long-polls a queue over the
REST task API and completes each task it leases as a success, doing nothing else (the same
no-op as the baseline's local executor).

Plain aiohttp, as a worker in any language would speak to the API: each poll asks for up to
``--max`` tasks and waits up to 30 s for one; the tasks a poll answers are completed
concurrently, then the worker polls again. SIGTERM ends it: a poll still waiting is abandoned
(the server offers again what it would have leased), completions under way finish. On exit it
prints one JSON line of what it did, for the benchmark to check that the counts add up.

    python -m flowlog.bench.task_worker BASE_URL QUEUE WORKER_ID [--max N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

POLL = "/api/v1/tasks/poll"
COMPLETE = "/api/v1/tasks/complete"
WAIT_SECONDS = 30.0


@dataclass(slots=True)
class Done:
    """What a worker did, printed as JSON when it ends."""

    worker: str
    polls: int = 0
    empty_polls: int = 0
    leased: int = 0
    completed: int = 0
    failed: int = 0
    """Polls or completions answered with anything but a success."""
    complete_ms: list[float] = field(default_factory=list)
    """Each completion's round trip."""


async def _post(session: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    """The answer's ``data``; None when the server said anything but a success."""
    async with session.post(path, data=orjson.dumps(body),
                            headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        answer = orjson.loads(await response.read())
        if response.status != 200 or answer.get("code") != 0:
            print(f"{path}: {response.status} {answer}", file=sys.stderr)
            return None
        return answer["data"]


async def work(base: str, queue: str, worker: str, most: int, stop: asyncio.Event) -> Done:
    """Polls ``queue`` and completes what it leases until ``stop`` is set."""
    done = Done(worker)
    poll_body = {"queue": queue, "workerId": worker, "max": most, "waitSeconds": WAIT_SECONDS}
    connector = aiohttp.TCPConnector(limit=most + 1)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def complete(task: dict[str, Any]) -> None:
            body = {"taskToken": task["taskToken"], "status": "success"}
            start = time.perf_counter()
            if await _post(session, COMPLETE, body) is None:
                done.failed += 1
            else:
                done.completed += 1
                done.complete_ms.append(round((time.perf_counter() - start) * 1000, 3))

        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                polling = asyncio.ensure_future(_post(session, POLL, poll_body))
                await asyncio.wait({polling, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not polling.done():
                    polling.cancel()  # the server sees the client go and leases nothing
                    with contextlib.suppress(asyncio.CancelledError):
                        await polling
                    break
                data = polling.result()
                done.polls += 1
                if data is None:
                    done.failed += 1
                    await asyncio.sleep(0.1)
                    continue
                tasks = data["tasks"]
                done.leased += len(tasks)
                done.empty_polls += not tasks
                await asyncio.gather(*(complete(task) for task in tasks))
        finally:
            stopped.cancel()
    return done


async def _main(base: str, queue: str, worker: str, most: int) -> Done:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return await work(base, queue, worker, most, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flowlog.bench.task_worker")
    parser.add_argument("base")
    parser.add_argument("queue")
    parser.add_argument("worker")
    parser.add_argument("--max", type=int, default=10)
    args = parser.parse_args(argv)
    done = asyncio.run(_main(args.base, args.queue, args.worker, args.max))
    print(orjson.dumps(asdict(done)).decode(), flush=True)


if __name__ == "__main__":
    main()
