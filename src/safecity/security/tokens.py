"""Access tokens (short-lived HS256 JWTs) and refresh tokens (opaque, stored hashed).

Pure functions: the clock is an argument, so expiry is tested without waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from safecity.security.errors import InvalidToken
from safecity.security.roles import Role

ISSUER = "safecity"
ALGORITHM = "HS256"
MIN_KEY_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
CLOCK_SKEW_S = 30  # tolerated for `iat` only; `exp` is exact


@dataclass(frozen=True, kw_only=True)
class TokenPair:
    """What a login or a refresh hands out (the OAuth2 token response, minus the JSON)."""

    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)


@dataclass(frozen=True)
class AccessClaims:
    subject: str  # the user id, as a string (JWT `sub`)
    role: Role
    unit_id: str | None
    issued_at: datetime
    expires_at: datetime
    token_id: str


def _check_key(key: str) -> bytes:
    raw = key.encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise ValueError(f"token signing key must have at least {MIN_KEY_BYTES} bytes")
    return raw


def issue_access_token(
    key: str,
    *,
    subject: str,
    role: Role,
    unit_id: str | None,
    now: datetime,
    ttl_s: int,
    token_id: str,
) -> str:
    issued = int(now.timestamp())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "typ": "access",
        "sub": subject,
        "role": str(role),
        "unit": unit_id,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": token_id,
    }
    return jwt.encode(payload, _check_key(key), algorithm=ALGORITHM)


def decode_access_token(key: str, token: str, now: datetime) -> AccessClaims:
    """Verify signature, issuer, type and lifetime against `now`. Raises `InvalidToken`."""
    try:
        claims = jwt.decode(
            token,
            _check_key(key),
            algorithms=[ALGORITHM],  # never taken from the token header: no `none`, no key confusion
            issuer=ISSUER,
            options={
                "require": ["iss", "sub", "iat", "exp", "jti"],
                # lifetime is checked below against the injected clock
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"access token rejected: {exc}") from exc

    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    issued, expires = claims["iat"], claims["exp"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (issued, expires)):
        raise InvalidToken("iat and exp must be integers")
    now_ts = now.timestamp()
    if now_ts >= expires:
        raise InvalidToken("access token expired")
    if issued > now_ts + CLOCK_SKEW_S:
        raise InvalidToken("access token issued in the future")
    try:
        role = Role(str(claims.get("role")))
    except ValueError as exc:
        raise InvalidToken("unknown role in access token") from exc
    unit_id, token_id = claims.get("unit"), claims["jti"]
    if unit_id is not None and not isinstance(unit_id, str):
        raise InvalidToken("unit must be a string")
    if not isinstance(token_id, str):
        raise InvalidToken("jti must be a string")
    return AccessClaims(
        subject=claims["sub"],
        role=role,
        unit_id=unit_id,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        token_id=token_id,
    )


@dataclass(frozen=True)
class RefreshTokenParts:
    """An opaque refresh token `<token_id>.<secret>`: the id finds the row, the secret proves possession."""

    token_id: str
    secret: str

    @property
    def token(self) -> str:
        return f"{self.token_id}.{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_refresh_secret(self.secret)

    def matches(self, stored_hash: str) -> bool:
        return hmac.compare_digest(self.secret_hash, stored_hash)


def new_refresh_token() -> RefreshTokenParts:
    return RefreshTokenParts(secrets.token_hex(16), secrets.token_urlsafe(32))


def parse_refresh_token(token: str) -> RefreshTokenParts:
    token_id, dot, secret = token.partition(".")
    if not dot or not token_id or not secret or len(token) > 200:
        raise InvalidToken("malformed refresh token")
    return RefreshTokenParts(token_id, secret)


def hash_refresh_secret(secret: str) -> str:
    # The secret has 256 bits of entropy: a fast hash is enough, a slow one would only cost CPU.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
