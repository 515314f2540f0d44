"""Identity and access: API keys, roles, sessions and single sign-on (OpenID Connect)."""
