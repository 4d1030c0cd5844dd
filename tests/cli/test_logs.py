"""Secrets never reach the log, even when a server logs a URL that carries one."""

from __future__ import annotations

import logging

import pytest

from safecity.logs import RedactSecrets


def test_tokens_in_logged_urls_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.error")
    logger.addFilter(RedactSecrets())
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1",
                        "/api/v1/live?access_token=eyJhbGciOi.secret.sig&topics=unit")
    finally:
        logger.filters.clear()
    assert "eyJhbGciOi" not in caplog.text
    assert "access_token=***&topics=unit" in caplog.text
