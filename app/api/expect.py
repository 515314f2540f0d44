"""The ``Expect`` request header: ``100-continue`` is answered, any other expectation ignored.

aiohttp refuses an expectation it does not know with a plain-text 417, before any middleware
runs: outside the API's envelope, its access log and its documented answers (the fuzzer found
``Expect: +0SXsyb#`` answered so). RFC 9110 (section 10.1.1) says a server MAY answer 417 to
an expectation other than 100-continue; flowlog serves the request as if it had none."""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11


async def continue_or_ignore(request: web.Request) -> None:
    """Every route's expect handler (aiohttp's ``expect_handler``)."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version == HttpVersion11 and expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the body's
