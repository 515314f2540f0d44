"""Structured logs: one JSON object a line, with the fields given in ``extra``."""

from __future__ import annotations

import logging

import orjson

from flowlog.logs import JsonFormatter


def test_a_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.LogRecord(
        "flowlog.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    record.flow_id = "f-1"
    record.trace_id = "t-9"

    line = JsonFormatter().format(record)

    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["message"] == "hello you"
    assert parsed["level"] == "warning"
    assert parsed["logger"] == "flowlog.x"
    assert (parsed["flow_id"], parsed["trace_id"]) == ("f-1", "t-9")
    assert parsed["time"].endswith("+00:00")


def test_exceptions_are_kept_inside_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    parsed = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in parsed["exception"]


def test_a_text_line_keeps_the_fields_too() -> None:
    from flowlog.logs import TextFormatter

    record = logging.LogRecord("flowlog", logging.ERROR, __file__, 1, "database unavailable", (),
                               None)  # fmt: skip
    record.error = "connection refused to db:5432"
    record.kind = "OSError"
    record.flow_ids = ["a", "b"]

    line = TextFormatter().format(record)

    assert "\n" not in line
    assert " ERROR flowlog database unavailable " in line
    assert "error='connection refused to db:5432'" in line
    assert "kind=OSError" in line
    assert 'flow_ids=["a","b"]' in line
