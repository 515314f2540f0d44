"""The README's screenshots can be made again by anyone (tests/browser/screenshots.py)."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.browser.conftest import require_chromium
from tests.browser.screenshots import SHOTS, make_screenshots


def test_the_screenshots_are_made_from_a_live_demo(server_url: str, tmp_path: Path) -> None:
    require_chromium()
    made = make_screenshots(server_url, tmp_path)
    assert [path.name for path in made] == list(SHOTS)
    for path in made:
        header = path.read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n", path.name
        width, height = struct.unpack(">II", header[16:24])
        assert width == (390 if path.name.startswith("phone") else 1280), path.name
        assert height >= 800, path.name
