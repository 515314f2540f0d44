"""The REST API: the seed's /api/v1/workflow routes and envelope, and what surrounds them."""
