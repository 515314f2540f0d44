"""The REST API: the seed's /api/v1/workflow routes and envelope, and what surrounds them.

Each resource's routes in a module of their own (``flows``, ``history``, ``definitions``,
``schedules``, ``ops``), gathered by ``routes``; what they share in ``common``. Routes are
declared as operations (``operations``), from which the OpenAPI document is generated
(``openapi``); every request passes ``middleware`` (who asks, forgery, idempotency keys,
metrics, the access log), its errors are answered by ``errors``, and its reads are routed to
a replica by ``replicas``. The bodies' and answers' models are flowlog.wire's.
"""
