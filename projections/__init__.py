"""Projections of the event log into queryable tables (``workflows``, ``workflow_nodes`` and
their counters): the statements an append runs with its events (``inline``), the rows they
write (``rows``), reads for lists and details (``reads``), rebuild from the log (``rebuild``)
and its check (``verify``). Installed as ``flowlog.projections``; below the rest of flowlog,
above the event store.
"""
