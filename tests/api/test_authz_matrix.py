"""Every route, every role, and no token: the answer must match the route's declared rule.

A route that declares no rule fails here, so nothing new can slip in unauthenticated.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from safecity.api.deps import DEVICE, PUBLIC, declared_roles
from safecity.api.live import _live_rule
from safecity.security import Role
from tests.api.conftest import RunningApi

# Framework pages that describe the API and carry no data.
DOCUMENTATION = {"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"}


def rule_of(route: BaseRoute) -> frozenset[Role] | str | None:
    if isinstance(route, APIWebSocketRoute):
        return declared_roles(_live_rule) if route.path == "/api/v1/live" else None
    assert isinstance(route, APIRoute)
    rules = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        rule = declared_roles(dep.call)
        if rule is not None:
            rules.add(rule)
        stack.extend(dep.dependencies)
    assert len(rules) <= 1, f"{route.path} declares several role rules: {rules}"
    return rules.pop() if rules else None


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_every_route_declares_a_role_rule(api: RunningApi) -> None:
    app_routes = _app_routes(api)
    missing = [r.path for r in app_routes if r.path not in DOCUMENTATION and rule_of(r) is None]
    assert missing == [], f"routes without a role rule: {missing}"
    assert len(app_routes) >= 10


def _app_routes(api: RunningApi) -> list[BaseRoute]:
    """Every route of every router the app includes, plus a check that the app has no others."""
    from safecity.api.app import ROUTERS, create_app

    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute | APIWebSocketRoute)]
    documented = set(create_app(api.services).openapi()["paths"])
    assert documented <= {r.path for r in routes}, "the app serves routes outside ROUTERS"
    return routes


async def test_every_route_answers_every_role_as_declared(api: RunningApi) -> None:
    checked = 0
    for route in _app_routes(api):
        if not isinstance(route, APIRoute) or route.path in DOCUMENTATION:
            continue
        rule = rule_of(route)
        path = concrete(route.path)
        for method in sorted(route.methods):
            if method == "HEAD":
                continue
            anonymous = await api.client.request(method, path, json={})
            if rule == PUBLIC:
                assert anonymous.status_code not in (401, 403) or path.startswith("/api/v1/auth"), (
                    method, path, anonymous.status_code)
                continue
            assert anonymous.status_code == 401, (method, path, "no token", anonymous.status_code)
            assert anonymous.headers["content-type"].startswith("application/problem+json")
            bad = await api.client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401, (method, path, "bad token", bad.status_code)
            if rule == DEVICE:  # devices only: a person's token is no device's token
                for role in Role:
                    answer = await api.client.request(method, path, json={}, headers=api.auth(role))
                    assert answer.status_code == 401, (method, path, role, answer.status_code)
                    checked += 1
                continue
            assert isinstance(rule, frozenset)
            for role in Role:
                answer = await api.client.request(method, path, json={}, headers=api.auth(role))
                if role in rule:
                    assert answer.status_code not in (401, 403), (method, path, role, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, role, answer.status_code)
                checked += 1
    assert checked > 0


async def test_live_socket_refuses_without_valid_token(api: RunningApi) -> None:
    import websockets

    ws_url = api.url.replace("http", "ws") + "/api/v1/live"
    for suffix in ("", "?access_token=garbage"):
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(ws_url + suffix):
                pass
