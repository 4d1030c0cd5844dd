"""Probes and metrics for orchestrators and Prometheus."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from safecity.api.deps import ServicesDep, public
from safecity.api.problems import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[public()])
async def healthz() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[public()])
async def readyz(services: ServicesDep, response: Response) -> dict[str, object]:
    """The database and the event log both answer (readiness)."""
    checks: dict[str, str] = {}
    for name, probe in (("database", services.db.ping), ("event_log", services.events.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failed: {exc}"
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return {"status": "ready" if ready else "not ready", "checks": checks}


@router.get("/metrics", dependencies=[public()], response_class=Response)
async def metrics(
    request: Request, services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus text format; guarded by a bearer token when `metrics_token` is set."""
    expected = services.settings.metrics_token
    if expected is not None:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise Problem(401, "metrics need the metrics bearer token", headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
