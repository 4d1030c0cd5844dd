"""Prometheus instruments of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "safecity_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "safecity_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.live_clients = Gauge("safecity_live_clients", "WebSocket subscribers", registry=self.registry)
        self.live_dropped = Counter(
            "safecity_live_dropped", "live events dropped for slow subscribers", registry=self.registry
        )

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = _route_template(request)
        self.latency.labels(request.method, route).observe(time.perf_counter() - start)
        self.requests.labels(request.method, route, str(response.status_code)).inc()
        return response


def _route_template(request: Request) -> str:
    """The matched path template, not the concrete path, so metrics labels stay few."""
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
