"""The workflow domain: definitions (``definition``), flows as event streams (``events``,
``streams``), their state (``state``) and the pure fold and decisions (``decide`` and the
modules it calls), the flow store and its SQL (``store``, ``queries``), the service
(``service``) and the reactor (``reactor``, ``drive``, ``execution``, ``work``).

Internal: users import the public surface from ``flowlog`` (docs/python.md). This package
re-exports nothing, so that importing one of its modules (the events, to read a history) loads
that module's own imports and not the service and the reactor.
"""
