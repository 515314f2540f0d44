"""Projections of the event log into queryable tables (workflows, workflow_nodes).

Empty until the workflow domain exists (issue 4); the package is here so that the layering
(eventstore <- projections <- app) is fixed and checked from the start.
"""
