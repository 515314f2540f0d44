"""``flowlog flows``: list, show, start, stop, cancel, retry and follow flows from a terminal,
on the database or through a server (docs/cli.md)."""
