"""Fixtures for real servers live in tests/_servers; they start or find the service, never skip."""

pytest_plugins = ["tests._servers.postgres", "tests._servers.nats"]
