"""Structured logging: key=value lines by default, JSON lines when asked."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

import orjson

_SECRET_IN_URL = re.compile(r"((?:access_token|refresh_token|token|password)=)[^&\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Tokens ride in WebSocket URLs (browsers cannot set headers there) and servers log URLs:
    whatever a record says, a token or password in a query string never reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_IN_URL.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("at=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
        )
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
