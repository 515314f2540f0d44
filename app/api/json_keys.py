"""Request bodies with a key given twice in one object are bad input.

JSON leaves duplicate names undefined (RFC 8259: "should be unique"); parsers keep the last
one, so ``{"status": "success", "status": "fail"}`` would be recorded as a failure that a
proxy, a log or a signature check upstream read as a success. Neither orjson nor pydantic
reports them, so the check counts colons, at C speed:

- in the body, each object member has one colon outside strings, and strings hold the rest;
- orjson writing the parsed body again gives one colon per member it *kept* and the colons
  of the strings it kept, each written as a plain ``:``.

A repeated key is a member the parse dropped, so a body without one has no more colons than
its parse written again, once its ``\\u003a`` escapes (colons in the parse, not in the text)
are counted in. Any body where that does not hold is read again the slow way, which finds
the repeated key (or proves there is none).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from flowlog.workflow.errors import Code, WorkflowError

_ESCAPED_COLONS = (b"\\u003a", b"\\u003A")


def refuse_duplicate_keys(raw: bytes) -> None:
    """Raises a 400 (BAD_INPUT) naming the key, if an object of the JSON body ``raw`` has a
    key twice; a body that is not JSON is left to the model's own parser to refuse."""
    colons = raw.count(b":")
    if colons == 0:
        return
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    escaped = sum(raw.count(form) for form in _ESCAPED_COLONS)
    try:
        if colons + escaped <= orjson.dumps(parsed).count(b":"):
            return
    except orjson.JSONEncodeError:
        pass
    _check_slowly(raw)


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _check_slowly(raw: bytes) -> None:
    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in members:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
        return dict(members)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except _Repeated as found:
        raise WorkflowError(
            Code.BAD_INPUT, f"the body gives the key {found.key[:100]!r} twice in one object"
        ) from None
    except RecursionError:
        raise WorkflowError(
            Code.BAD_INPUT, "the body nests too deeply to be checked for repeated keys"
        ) from None
