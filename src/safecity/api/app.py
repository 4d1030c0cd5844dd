"""The app factory: one typed Services container in, one FastAPI app out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from safecity import __version__
from safecity.alarms import api as alarms_api
from safecity.api import audit, auth, events, health, live, users
from safecity.api.auth import ClientThrottle
from safecity.api.live import LiveHub
from safecity.api.metrics import Metrics
from safecity.api.problems import install_problem_handlers
from safecity.dispatch import api as dispatch_api
from safecity.services import Services
from safecity.web import api as web_api

ROUTERS = (
    health.router,
    auth.router,
    users.router,
    audit.router,
    events.router,
    live.router,
    alarms_api.router,
    dispatch_api.router,
    web_api.router,
)


def create_app(services: Services) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = LiveHub(services.events, metrics)
        app.state.live_hub = hub
        hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(
        title="safecity",
        version=__version__,
        summary="Public-safety operations platform API",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.metrics = metrics
    app.state.login_throttle = ClientThrottle()
    app.middleware("http")(metrics.middleware)
    install_problem_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
