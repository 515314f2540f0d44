"""The OpenID providers of oidc_provider.py, as fixtures of this folder's tests."""

from tests.access.oidc_provider import oidc_mock, oidc_provider

__all__ = ["oidc_mock", "oidc_provider"]
