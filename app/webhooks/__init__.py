"""Webhooks: the log pushed out to other systems (docs/webhooks.md). Subscriptions are streams
in the log with a projection; deliveries follow the Standard Webhooks specification, at least
once and in order per flow, tracked by each subscription's cursor in the log."""
