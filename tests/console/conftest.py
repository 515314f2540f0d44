"""The console's web tests run the whole service, as the REST API's tests do."""

from tests.access.oidc_provider import oidc_provider
from tests.api.conftest import client, make_service, service

__all__ = ["client", "make_service", "oidc_provider", "service"]
