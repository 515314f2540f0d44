"""Fixtures of the CloudEvents-in tests: the REST API's services (tests/api/conftest.py)."""

from __future__ import annotations

from tests.api.conftest import client, make_service, service

__all__ = ["client", "make_service", "service"]
