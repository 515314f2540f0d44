"""The webhook tests run the whole service, as the REST API's tests do."""

from tests.api.conftest import make_service

__all__ = ["make_service"]
