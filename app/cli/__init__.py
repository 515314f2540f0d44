"""The ``flowlog`` command: its arguments (``args``), the commands of each area (``archive``,
``audit``, ``flows``, ``schedules``), and the words it has for problems (``problems``)."""

from flowlog.cli.main import main

__all__ = ["main"]
