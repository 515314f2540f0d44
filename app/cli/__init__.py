"""The ``flowlog`` command: its arguments (``args``), its checks before a command runs
(``main``), what each command does on its database (``commands``; those of an area in
``archive``, ``audit``, ``flows``, ``keys``, ``schedules``), and the words it has for problems
(``problems``)."""

from flowlog.cli.main import main

__all__ = ["main"]
