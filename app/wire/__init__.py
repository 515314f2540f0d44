"""The REST API's shapes on the wire, as pydantic models: what a request may say (unknown
fields are refused, values must be storable) and what an answer says. The server validates and
answers with them, the OpenAPI document is generated from them, and the client (app/client/)
sends and reads them, so the two cannot drift; definitions registered over REST and schedules
keep them as their settings. Field names are the seed's (camelCase).

A module per resource: ``base`` (the types every request builds on), ``envelope``, ``flows``,
``bulk``, ``history``, ``definitions``, ``schedules``, ``health``. Nothing here imports the
server (flowlog.api), the engine or a feature package: the client and the features import it
without them.
"""
