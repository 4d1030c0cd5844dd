"""Password hashing (argon2id) and the password policy.

Hashing is deliberately slow; the service runs it in a worker thread. Tests inject the
`CHEAP` profile so a login costs microseconds instead of ~50 ms and 64 MiB.
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from safecity.security.errors import WeakPassword

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 accepts more, but nobody types this much; bounds the work per login

DEFAULT_PROFILE: argon2.Parameters = RFC_9106_LOW_MEMORY
"""RFC 9106's second recommendation: argon2id, t=3, m=64 MiB, p=4."""

CHEAP_PROFILE: argon2.Parameters = CHEAPEST
"""For tests only: the smallest parameters argon2 accepts."""


def check_password_policy(password: str, *, username: str | None = None) -> None:
    """Raise `WeakPassword` unless the password is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise WeakPassword("password must not be blank")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WeakPassword("password is not valid text") from exc
    if username and username.casefold() in password.casefold():
        raise WeakPassword("password must not contain the username")


class PasswordHasher:
    """argon2id hashing that never raises on a bad stored hash: a garbage hash simply does not verify."""

    def __init__(self, profile: argon2.Parameters = DEFAULT_PROFILE) -> None:
        self._argon2 = argon2.PasswordHasher.from_parameters(profile)

    @classmethod
    def cheap(cls) -> PasswordHasher:
        """Fast hasher for tests."""
        return cls(CHEAP_PROFILE)

    def hash(self, password: str, *, username: str | None = None) -> str:
        """Check the policy, then hash. Raises `WeakPassword`."""
        check_password_policy(password, username=username)
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True when the password matches; False for a mismatch or an unparseable hash.

        The comparison inside libargon2 is constant-time.
        """
        try:
            return self._argon2.verify(password_hash, password)
        except (VerificationError, InvalidHashError, UnicodeError, ValueError, TypeError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters (or cannot be read at all)."""
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except (InvalidHashError, UnicodeError, ValueError, TypeError):
            return True
