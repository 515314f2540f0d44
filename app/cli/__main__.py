"""``python -m flowlog.cli``: the ``flowlog`` command, for processes that start another."""

import sys

from flowlog.cli.main import main

# Guarded: a rebuild's job processes (spawned) import the main module again, as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
