"""``python -m flowlog.cli``: the ``flowlog`` command, for processes that start another."""

import sys

from flowlog.cli.main import main

sys.exit(main())
