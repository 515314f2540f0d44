"""Requests that are not valid HTTP (an over-long header line, a malformed request line) are
refused by aiohttp's parser with a 400 before any handler runs, and aiohttp logs each at ERROR
with a traceback: anyone who can connect could fill the logs, and an operator would read a
client's garbage as a fault of the service. They are the client's fault: one WARNING line
each, saying who and what, with no traceback and no more than a short excerpt of the input.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

_EXCERPT = 120
_SERVER_LOGGER = "aiohttp.server"


class BadRequestsAsWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "a request that is not valid HTTP was refused", ()
            record.peer = peer
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            record.status = error.code
            record.error = " ".join(error.message.split())[:_EXCERPT]
        return True


def quiet_bad_requests() -> None:
    """Installs the filter on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(_SERVER_LOGGER)
    if not any(isinstance(f, BadRequestsAsWarnings) for f in logger.filters):
        logger.addFilter(BadRequestsAsWarnings())
