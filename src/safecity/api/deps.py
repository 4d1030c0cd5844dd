"""Who is calling, and may they: one dependency per role rule.

Every route under /api declares its rule with `allow(...)` or `public()`; the authorization test
walks the app and fails for a route that declares neither.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from safecity.api.problems import Problem
from safecity.security import InvalidToken, Principal, Role
from safecity.security.devices import DevicePrincipal, parse_device_token
from safecity.services import Services

ROLE_RULE_ATTR = "__safecity_roles__"
PUBLIC = "public"
DEVICE = "device"

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def authenticate(services: Services, token: str | None) -> Principal:
    if not token:
        raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await services.security.principal_from_access_token(token)
    except InvalidToken as exc:
        raise Problem(
            401, f"invalid token: {exc}", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from exc


def allow(*roles: Role | Iterable[Role]) -> Any:
    """A dependency that authenticates the caller and admits only the given roles."""
    allowed: frozenset[Role] = frozenset(
        r for item in roles for r in ((item,) if isinstance(item, Role) else item)
    )

    async def check(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Principal:
        services = get_services(request)
        principal = await authenticate(services, token)
        if principal.role not in allowed:
            await services.audit.append(
                principal.username,
                principal.role.value,
                "access.denied",
                f"{request.method} {request.url.path}",
                outcome="denied",
                client=client_address(request),
            )
            raise Problem(403, f"role {principal.role.value!r} may not do this")
        request.state.principal = principal
        return principal

    setattr(check, ROLE_RULE_ATTR, allowed)
    return Depends(check)


DeviceResolver = Callable[[Services, str, str], Awaitable[DevicePrincipal | None]]
"""(services, device id, secret) → the device, or None when the id is unknown, revoked or the secret wrong."""


def device(resolve: DeviceResolver) -> Any:
    """A dependency for routes called by devices, not people: a device token, never a user's token.

    The authorization test checks that such routes refuse no token, a bad token and every user's token.
    """

    async def check(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> DevicePrincipal:
        if not token:
            raise Problem(401, "a device token is required", headers={"WWW-Authenticate": "Bearer"})
        parsed = parse_device_token(token)
        found = await resolve(get_services(request), parsed.device_id, parsed.secret) if parsed else None
        if found is None:
            raise Problem(401, "invalid device token",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        request.state.device = found
        return found

    setattr(check, ROLE_RULE_ATTR, DEVICE)
    return Depends(check)


def public() -> Any:
    """Marks a route as deliberately open (health probes, the token endpoint)."""

    async def open_route() -> None:
        return None

    setattr(open_route, ROLE_RULE_ATTR, PUBLIC)
    return Depends(open_route)


def declared_roles(dependant_call: Callable[..., Awaitable[Any]] | Any) -> frozenset[Role] | str | None:
    rule: frozenset[Role] | str | None = getattr(dependant_call, ROLE_RULE_ATTR, None)
    return rule
