"""Flow control's REST tests run the whole service, as the REST API's tests do."""

from tests.api.conftest import client, make_service, service

__all__ = ["client", "make_service", "service"]
