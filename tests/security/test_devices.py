"""Device tokens: shown once, stored as a digest, checked in constant time."""

from __future__ import annotations

import pytest

from safecity.security.devices import issue_device_token, parse_device_token, secret_digest, secret_matches


def test_an_issued_token_parses_back_and_matches_only_its_digest() -> None:
    token, digest = issue_device_token("phone-7")
    parsed = parse_device_token(str(token))
    assert parsed == token
    assert secret_matches(parsed.secret, digest)
    assert digest != parsed.secret and digest == secret_digest(token.secret)
    other, _ = issue_device_token("phone-7")
    assert not secret_matches(other.secret, digest)


@pytest.mark.parametrize("value", ["", "phone-7", "phone-7.short", "a b.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                   "x" * 65 + "." + "y" * 43, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"])
def test_anything_else_is_not_a_device_token(value: str) -> None:
    assert parse_device_token(value) is None


def test_device_ids_are_restricted_to_a_safe_alphabet() -> None:
    with pytest.raises(ValueError):
        issue_device_token("../etc")
