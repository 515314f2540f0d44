"""What a flow id can be: exactly the ids flowlog makes. A flow created by a request gets a
random UUID (version 4, app/workflow/service.py); a schedule's fire derives its flow's id as a
name-based UUID (version 5, app/schedules/decide.py), so that each fire makes one flow. Both are
spelled as ``str(uuid)`` spells them: lowercase, with hyphens.

Text that is not such an id names no flow that could ever exist: the edges (the REST API, the
CLI) refuse it as bad input ("not a flow id") instead of looking it up and answering that it
does not exist."""

from __future__ import annotations

import re

FLOW_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
"""The JSON Schema (ECMA) pattern of a flow id, for the OpenAPI document."""
_FLOW_ID = re.compile(FLOW_ID_PATTERN.strip("^$"))

NOT_A_FLOW_ID = "not a flow id (flow ids are the UUIDs flowlog made, as its lists show them)"


def is_flow_id(text: str) -> bool:
    return _FLOW_ID.fullmatch(text) is not None
