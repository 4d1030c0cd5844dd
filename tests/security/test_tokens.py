"""Access tokens (HS256 JWT) and opaque refresh tokens; the clock is always passed in."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from safecity.security import InvalidToken, Role, decode_access_token, issue_access_token
from safecity.security.tokens import hash_refresh_secret, new_refresh_token, parse_refresh_token

KEY = "k" * 64  # long enough for the HS512 forgery test, too
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _issue(key: str = KEY, *, now: datetime = NOW, ttl_s: int = 900, role: Role = Role.DISPATCHER) -> str:
    return issue_access_token(key, subject="7", role=role, unit_id="E12", now=now, ttl_s=ttl_s, token_id="t1")


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_carries_the_claims() -> None:
    claims = decode_access_token(KEY, _issue(), NOW + timedelta(seconds=10))
    assert claims.subject == "7"
    assert claims.role is Role.DISPATCHER
    assert claims.unit_id == "E12"
    assert claims.token_id == "t1"
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + timedelta(seconds=900)


def test_token_payload_has_the_agreed_fields() -> None:
    payload = jwt.decode(_issue(), KEY, algorithms=["HS256"], options={"verify_exp": False}, issuer="safecity")
    assert payload["typ"] == "access"
    assert payload["iss"] == "safecity"
    assert set(payload) == {"sub", "role", "unit", "iat", "exp", "jti", "typ", "iss"}
    assert jwt.get_unverified_header(_issue())["alg"] == "HS256"


def test_expired_token_is_refused() -> None:
    token = _issue(ttl_s=60)
    decode_access_token(KEY, token, NOW + timedelta(seconds=59))
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(KEY, token, NOW + timedelta(seconds=60))


def test_token_from_the_future_is_refused() -> None:
    with pytest.raises(InvalidToken, match="future"):
        decode_access_token(KEY, _issue(now=NOW + timedelta(hours=1)), NOW)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(InvalidToken):
        decode_access_token(KEY, _issue("z" * 48), NOW)


def test_alg_none_is_refused() -> None:
    good = jwt.decode(_issue(), KEY, algorithms=["HS256"], options={"verify_exp": False}, issuer="safecity")
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "NONE"}):
        forged = f"{_b64(header)}.{_b64({**good, 'role': 'admin'})}."
        with pytest.raises(InvalidToken):
            decode_access_token(KEY, forged, NOW)


def test_other_hmac_algorithm_is_refused() -> None:
    good = jwt.decode(_issue(), KEY, algorithms=["HS256"], options={"verify_exp": False}, issuer="safecity")
    with pytest.raises(InvalidToken):
        decode_access_token(KEY, jwt.encode(good, KEY, algorithm="HS512"), NOW)


def test_tampered_payload_is_refused() -> None:
    header, payload, signature = _issue().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = f"{header}.{_b64({**claims, 'role': 'admin'})}.{signature}"
    with pytest.raises(InvalidToken):
        decode_access_token(KEY, forged, NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"typ": "refresh"}, "not an access token"),
        ({"iss": "elsewhere"}, "issuer"),
        ({"role": "superuser"}, "role"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
    ],
)
def test_claims_are_checked(change: dict[str, object], message: str) -> None:
    claims = jwt.decode(_issue(), KEY, algorithms=["HS256"], options={"verify_exp": False}, issuer="safecity")
    claims.update(change)
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(InvalidToken, match=message):
        decode_access_token(KEY, jwt.encode(claims, KEY, algorithm="HS256"), NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Bearer xyz"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        decode_access_token(KEY, token, NOW)


def test_short_signing_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        _issue("short")


def test_refresh_token_is_opaque_and_stored_hashed() -> None:
    parts = new_refresh_token()
    token_id, _, secret = parts.token.partition(".")
    assert (token_id, secret) == (parts.token_id, parts.secret)
    assert parse_refresh_token(parts.token) == parts
    assert parts.secret_hash == hash_refresh_secret(secret)
    assert secret not in parts.secret_hash
    assert parts.matches(parts.secret_hash)
    assert not parse_refresh_token(f"{token_id}.wrong").matches(parts.secret_hash)
    assert new_refresh_token() != parts


@pytest.mark.parametrize("token", ["", "nodot", ".secret", "id.", "x" * 300 + ".y"])
def test_malformed_refresh_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        parse_refresh_token(token)
