"""Retention and archival: ended flows past their retention leave the hot log for archive
files, through one audited path (docs/archival.md)."""
