"""The projections' statements, loaded from sql/queries/projections.sql by name."""

from __future__ import annotations

from dataclasses import dataclass

from sql import load_queries


@dataclass(frozen=True, slots=True)
class ProjectionQueries:
    insert_workflow: str
    update_workflow: str
    insert_node: str
    update_node: str
    add_counts: str
    upsert_definition: str
    workflow: str
    nodes_of: str
    node_names: str
    definitions: str


Q = load_queries(ProjectionQueries, "projections")
