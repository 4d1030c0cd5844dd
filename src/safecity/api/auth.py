"""OAuth2 password flow, refresh-token rotation and revocation."""

from __future__ import annotations

import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from safecity.api.deps import ServicesDep, allow, client_address, public
from safecity.api.problems import Problem
from safecity.security import (
    ALL_ROLES,
    AccountLocked,
    InvalidCredentials,
    InvalidToken,
    Principal,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int


class RefreshRequest(BaseModel):
    refresh_token: str


class Me(BaseModel):
    username: str
    role: str
    unit_id: str | None


class ClientThrottle:
    """Per-address sliding window on login attempts, in front of the per-account lockout."""

    def __init__(self, attempts: int = 20, window_s: float = 60.0) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = {}

    def check(self, client: str, now: float) -> float | None:
        """Record an attempt; return seconds to wait if over the limit."""
        seen = self._seen.setdefault(client, deque())
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if len(seen) >= self.attempts:
            return seen[0] + self.window_s - now
        seen.append(now)
        return None


@router.post("/token", dependencies=[public()])
async def token(
    request: Request,
    services: ServicesDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> TokenResponse:
    client = client_address(request) or "unknown"
    throttle: ClientThrottle = request.app.state.login_throttle
    wait = throttle.check(client, time.monotonic())
    if wait is not None:
        raise Problem(429, "too many login attempts from this address", headers={"Retry-After": str(int(wait) + 1)})
    try:
        pair = await services.security.authenticate(form.username, form.password, client=client)
    except AccountLocked as exc:
        raise Problem(
            423, "account locked after repeated failures", headers={"Retry-After": str(exc.retry_after)}
        ) from exc
    except InvalidCredentials as exc:
        raise Problem(401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}) from exc
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/refresh", dependencies=[public()])
async def refresh(body: RefreshRequest, services: ServicesDep) -> TokenResponse:
    """Public by design: the refresh token itself is the credential; it is rotated on every use."""
    try:
        pair = await services.security.refresh(body.refresh_token)
    except InvalidToken as exc:
        raise Problem(401, f"refresh refused: {exc}") from exc
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/revoke", status_code=204)
async def revoke(
    body: RefreshRequest, services: ServicesDep, principal: Annotated[Principal, allow(ALL_ROLES)]
) -> None:
    """Log out: the refresh token stops working (access tokens expire on their own, soon)."""
    try:
        await services.security.revoke(body.refresh_token, actor=principal)
    except InvalidToken as exc:
        raise Problem(400, f"not a refresh token of yours: {exc}") from exc


@router.get("/me")
async def me(principal: Annotated[Principal, allow(ALL_ROLES)]) -> Me:
    return Me(username=principal.username, role=principal.role.value, unit_id=principal.unit_id)
