"""Task queues: nodes offered on queues, leased by workers anywhere over the REST task API
(docs/workers.md)."""
