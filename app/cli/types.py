"""Values of the ``flowlog`` command's options, checked as argparse reads them: a bad one exits
2 with the command's usage and names the option, before anything is started or connected."""

from __future__ import annotations

import argparse
import re
from urllib.parse import urlsplit

from flowlog.flow_ids import NOT_A_FLOW_ID, is_flow_id
from flowlog.wire.tasks import QUEUE_PATTERN, WORKER_PATTERN

PORTS = range(1, 65536)


def port(text: str) -> int:
    """A TCP port to listen on or connect to: 1 to 65535 (0 would be any port; more wraps)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in PORTS:
        raise argparse.ArgumentTypeError(
            f"must be a port number from {PORTS.start} to {PORTS.stop - 1}, not {text!r}"
        )
    return value


def server_url(text: str) -> str:
    """A flowlog server's base URL: http or https, a host, and a port in range if any."""
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a URL ({exc}): {text!r}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s)://HOST[:PORT] URL: {text!r}")
    try:
        given = parts.port  # ValueError when out of 0-65535, or not a number
    except ValueError:
        given = -1
    if given is not None and given not in PORTS:
        raise argparse.ArgumentTypeError(
            f"its port must be a number from {PORTS.start} to {PORTS.stop - 1}: {text!r}"
        )
    return text


def flow_id(text: str) -> str:
    """A flow's id as flowlog makes them: other text names no flow that could exist."""
    if not is_flow_id(text):
        raise argparse.ArgumentTypeError(f"{NOT_A_FLOW_ID}: {text!r}")
    return text


def queue_name(text: str) -> str:
    """A task queue's name, as the task API takes it."""
    if not re.match(QUEUE_PATTERN, text):
        raise argparse.ArgumentTypeError(f"a queue's name is 1 to 100 letters, digits and "
                                         f"_ . : -, not {text!r}")  # fmt: skip
    return text


def worker_id(text: str) -> str:
    """A worker's name, as the task API takes it."""
    if not re.match(WORKER_PATTERN, text):
        raise argparse.ArgumentTypeError(f"a worker id is 1 to 200 letters, digits and "
                                         f"_ . : @ / -, not {text!r}")  # fmt: skip
    return text


JOBS = range(1, 65)


def jobs(text: str) -> int:
    """How many processes share a piece of work: 1 to 64."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value not in JOBS:
        raise argparse.ArgumentTypeError(
            f"must be a number of processes from {JOBS.start} to {JOBS.stop - 1}, not {text!r}"
        )
    return value
