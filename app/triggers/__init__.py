"""CloudEvents in (docs/events.md): events sent to ``POST /api/v1/events``, recorded in the
log, deduplicated by source and id, routed by each tenant's event rules to the flows they
start, and matched against the callback nodes that wait for an event."""
