"""Audit: a flow's history, its state at any point, differences between points, export and
import of the log, and checking a new definition against stored histories."""
