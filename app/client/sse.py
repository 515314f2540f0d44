"""Server-Sent Events as the flow event stream sends them (one ``id``, ``event`` and ``data``
line each, a blank line after; ``:`` lines keep the connection alive)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    event: str
    data: str


async def messages(lines: AsyncIterator[bytes]) -> AsyncIterator[Message]:
    """The messages of a stream of lines (as aiohttp's ``response.content`` yields them)."""
    fields: dict[str, list[str]] = {}
    async for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if fields:
                yield Message(
                    "".join(fields.get("id", [])),
                    "".join(fields.get("event", [])) or "message",
                    "\n".join(fields.get("data", [])),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))
