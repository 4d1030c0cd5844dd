"""Device credentials: the bearer tokens of things that are not people (a protected person's phone app, a
sensor gateway posting SenML over HTTP).

A device token is `<device id>.<secret>`: the id says which row to look at, the secret is 32 random
bytes. Only the SHA-256 of the secret is stored (a random 256-bit secret needs no slow hash; a
password would), and comparison is constant-time. Each domain keeps its devices in its own table and
passes a resolver to `api.deps.device(...)`; the token is shown once, when the device is registered.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_TOKEN = re.compile(r"^(?P<id>[A-Za-z0-9_-]{1,64})\.(?P<secret>[A-Za-z0-9_-]{40,64})$")


@dataclass(frozen=True, slots=True)
class DeviceToken:
    device_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.device_id}.{self.secret}"


@dataclass(frozen=True, slots=True)
class DevicePrincipal:
    """Who is calling a device route: the device, its kind, and what it belongs to (an order, a gateway)."""

    device_id: str
    kind: str
    owner: str


def issue_device_token(device_id: str) -> tuple[DeviceToken, str]:
    """A new token for `device_id` and the digest to store."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", device_id):
        raise ValueError(f"bad device id {device_id!r}")
    token = DeviceToken(device_id, secrets.token_urlsafe(32))
    return token, secret_digest(token.secret)


def parse_device_token(value: str) -> DeviceToken | None:
    match = _TOKEN.match(value)
    return DeviceToken(match["id"], match["secret"]) if match else None


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(secret_digest(secret), digest)
